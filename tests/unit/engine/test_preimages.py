"""The engine's pre-images (``TableSpec.with_preimages``): the old rows of the updated keys, in the
order of the change set's U rows, read as deleted rows are; off by default."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snapcdc.engine import TableSpec, diff_files, diff_tables

OBSERVED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
SPEC = TableSpec(primary_key=("id",), column_types={"id": "string", "amount": "int64", "note": "string"})
OLD = pa.table({"id": ["a", "b", "c", "d"], "amount": ["1", "2", "3", "4"], "note": ["x", None, "z", "w"]})
NEW = pa.table({"id": ["d", "b", "a", "e"], "amount": ["4", "20", "1", "5"], "note": ["w2", None, "x", "v"]})


def _old_snapshot(spec: TableSpec) -> pa.Table:
    return diff_tables(None, OLD, spec, OBSERVED).snapshot


def test_pre_images_are_the_old_rows_of_the_updated_keys_in_u_row_order() -> None:
    spec = replace(SPEC, with_preimages=True)
    result = diff_tables(_old_snapshot(spec), NEW, spec, OBSERVED)
    updates = result.changes.filter(pa.compute.equal(result.changes["_cdc_operation"], "U"))
    assert result.preimages is not None
    assert result.preimages.column_names == ["id", "amount", "note"]
    assert result.preimages["id"].to_pylist() == updates["id"].to_pylist() == ["d", "b"]
    assert result.preimages.to_pylist() == [
        {"id": "d", "amount": 4, "note": "w"},
        {"id": "b", "amount": 2, "note": None},
    ]


def test_off_by_default_and_without_an_old_side() -> None:
    assert diff_tables(_old_snapshot(SPEC), NEW, SPEC, OBSERVED).preimages is None
    assert diff_tables(None, NEW, replace(SPEC, with_preimages=True), OBSERVED).preimages is None


def test_diff_files_writes_them_beside_the_change_set(tmp_path) -> None:
    spec = replace(SPEC, with_preimages=True)
    first = diff_files(
        old=None, new=_csv(tmp_path / "old.csv", OLD), spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "1"
    )
    assert first.preimages_path is None
    outcome = diff_files(
        old=first.snapshot_path,
        new=_csv(tmp_path / "new.csv", NEW),
        spec=spec,
        observed_at=OBSERVED,
        out_dir=tmp_path / "2",
    )
    assert outcome.preimages_path is not None
    assert pq.read_table(outcome.preimages_path)["amount"].to_pylist() == [4, 2]
    plain = diff_files(
        old=first.snapshot_path, new=tmp_path / "new.csv", spec=SPEC, observed_at=OBSERVED, out_dir=tmp_path / "3"
    )
    assert plain.preimages_path is None and not (tmp_path / "3" / "preimages.parquet").exists()


def _csv(path, table):
    import pyarrow.csv as pacsv

    pacsv.write_csv(table, path)
    return path


ROWS = st.dictionaries(st.sampled_from("abcdefgh"), st.tuples(st.integers(0, 3), st.sampled_from(["x", "y", None])))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(old=ROWS, new=ROWS)
def test_each_pre_image_is_the_old_row_and_each_post_image_the_new_one(old, new) -> None:
    spec = replace(SPEC, with_preimages=True, max_delete_ratio=1.0)

    def table(rows):
        return pa.table(
            {
                "id": list(rows),
                "amount": [str(v[0]) for v in rows.values()],
                "note": [v[1] for v in rows.values()],
            },
            schema=pa.schema([("id", pa.string()), ("amount", pa.string()), ("note", pa.string())]),
        )

    result = diff_tables(diff_tables(None, table(old), spec, OBSERVED).snapshot, table(new), spec, OBSERVED)
    updates = result.changes.filter(pa.compute.equal(result.changes["_cdc_operation"], "U"))
    pre = result.preimages.to_pylist()
    assert [r["id"] for r in pre] == updates["id"].to_pylist()
    assert {r["id"]: (r["amount"], r["note"]) for r in pre} == {k: old[k] for k in updates["id"].to_pylist()}
    assert all(old[k] != new[k] for k in updates["id"].to_pylist())
