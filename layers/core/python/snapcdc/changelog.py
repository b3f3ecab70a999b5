"""Reading a table's change stream back: apply CDC files to a snapshot, compare tables.

Pure (pyarrow only). Used by ``snapcdc verify`` and by the tests as their oracle: applying a
change set to the old snapshot (upsert ``I`` and ``U`` by key, remove ``D``) must give the new one.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

CDC_COLUMNS = ("_cdc_operation", "_cdc_timestamp")


def data_columns(table: pa.Table) -> pa.Table:
    """Drop the pipeline's own columns (CDC metadata, hashes): everything starting with ``_``."""
    return table.select([name for name in table.column_names if not name.startswith("_")])


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns in its order; missing columns become nulls."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table[field.name].cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def apply_changes(state: pa.Table, changes: pa.Table, primary_key: Sequence[str]) -> pa.Table:
    """Upsert the ``I``/``U`` rows of ``changes`` into ``state`` and remove its ``D`` keys."""
    changes_data = data_columns(changes)
    schema = pa.unify_schemas([data_columns(state).schema, changes_data.schema], promote_options="permissive")
    state = conform(data_columns(state), schema)
    if changes.num_rows == 0:
        return state
    keys = list(primary_key)
    kept = state.join(changes_data.select(keys), keys=keys, join_type="left anti")
    upserts = changes_data.filter(pc.is_in(changes["_cdc_operation"], pa.array(["I", "U"])))
    return pa.concat_tables([conform(kept, schema), conform(upserts, schema)])


def sort_by_key(table: pa.Table, primary_key: Sequence[str]) -> pa.Table:
    return table.sort_by([(name, "ascending") for name in primary_key])


def table_differences(actual: pa.Table, expected: pa.Table, primary_key: Sequence[str]) -> str | None:
    """None when both hold the same rows (in any order); else a short description of the first difference."""
    if actual.column_names != expected.column_names:
        return f"columns differ: {actual.column_names} != {expected.column_names}"
    if actual.num_rows != expected.num_rows:
        return f"row count {actual.num_rows} != expected {expected.num_rows}"
    actual = sort_by_key(conform(actual, expected.schema), primary_key)
    expected = sort_by_key(expected, primary_key)
    if actual.equals(expected):
        return None
    for name in expected.column_names:
        mismatch = pc.invert(pc.fill_null(pc.equal(actual[name], expected[name]), False))
        both_null = pc.and_(pc.is_null(actual[name]), pc.is_null(expected[name]))
        rows = pc.indices_nonzero(pc.and_not(mismatch, both_null))
        if len(rows):
            row = rows[0].as_py()
            key = {k: expected[k][row].as_py() for k in primary_key}
            return (
                f"column {name} differs at key {key}: {actual[name][row].as_py()!r} != {expected[name][row].as_py()!r}"
            )
    return "tables differ"
