"""The new side: the new snapshot as typed batches against the table's stable schema, streamed from a
CSV file (the fast path) or cut from a table already in memory (the exact path, every column typed
from its text, widened or quarantined where its values no longer fit)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from snapcdc.engine.columns import check_named_columns
from snapcdc.engine.csv_input import read_csv_strings, read_header, sample_strings, typed_batches
from snapcdc.engine.schema import ARROW_TYPES, infer, parse, type_name, widen
from snapcdc.engine.spec import TableSpec

SLOW_PATH_BATCH = 128 * 1024  # rows per batch when a whole table is already in memory
STREAM_BATCH_ROWS = 96 * 1024  # rows per batch diffed when streaming a CSV


@dataclass(frozen=True)
class NewBatch:
    batch: pa.RecordBatch  # typed, in schema order
    reasons: np.ndarray | None  # per row: why it is quarantined (a value not fitting its type), or None


@dataclass
class NewInput:
    schema: pa.Schema
    batches: Iterable[NewBatch]
    schema_changes: list[dict[str, str]]
    text_rows: Callable[[np.ndarray], pa.Table]  # rows as they were read, as text (for the quarantine)


def _column_order(names: list[str], previous: pa.Schema | None) -> list[str]:
    known = list(previous.names) if previous is not None else []
    return known + [c for c in names if c not in known]


def _established(name: str, previous: pa.Schema | None) -> str | None:
    if previous is None or name not in previous.names:
        return None
    return type_name(previous.field(name).type)


def _schema_change(
    name: str, chosen: str, configured: str | None, established: str | None, in_file: bool, has_history: bool
) -> dict[str, str] | None:
    if not in_file:
        return {"column": name, "change": "removed", "type": chosen}
    if established is None and has_history:
        return {"column": name, "change": "added", "type": chosen}
    if established is not None and chosen != established:
        kind = "widened" if configured is None else "retyped"
        return {"column": name, "change": kind, "from": established, "to": chosen}
    return None


def _check_keys(names: list[str], spec: TableSpec, source: str, delimiter: str = "") -> None:
    """Every column the spec names is in the header (:mod:`snapcdc.engine.columns`)."""
    check_named_columns(names, spec, source, delimiter)


@dataclass(frozen=True)
class _Planned:
    schema: pa.Schema
    schema_changes: list[dict[str, str]]


def _planned_schema(
    names: list[str], spec: TableSpec, previous: pa.Schema | None, sample: Callable[[], pa.Table]
) -> _Planned:
    """The fast path's guess: configured type, else the established one, else inferred from the first
    block. If a later value does not convert, the exact path (:func:`_type_new`) takes over."""
    schema_fields, changes = [], []
    for name in _column_order(names, previous):
        configured, established, in_file = spec.configured_type(name), _established(name, previous), name in names
        chosen = configured or established or (infer(sample()[name]) if in_file else "string")
        change = _schema_change(name, chosen, configured, established, in_file, previous is not None)
        changes += [change] if change else []
        schema_fields.append(pa.field(name, ARROW_TYPES[chosen]))
    return _Planned(pa.schema(schema_fields), changes)


@dataclass
class _Typed:
    table: pa.Table
    reasons: np.ndarray | None  # per row: why it is quarantined (a value not fitting a configured type), or None
    schema_changes: list[dict[str, str]]


def _type_new(raw: pa.Table, spec: TableSpec, previous: pa.Schema | None) -> _Typed:
    """The exact path: every column parsed from its text, widened when its values no longer fit."""
    columns: list[pa.ChunkedArray] = []
    schema_fields: list[pa.Field] = []
    reasons = np.full(raw.num_rows, None, dtype=object)
    changes: list[dict[str, str]] = []
    for name in _column_order(raw.column_names, previous):
        configured, established, in_file = (
            spec.configured_type(name),
            _established(name, previous),
            name in raw.column_names,
        )
        if not in_file:
            chosen = configured or established or "string"
            values = pa.chunked_array([pa.nulls(raw.num_rows, ARROW_TYPES[chosen])])
        elif configured is not None:
            chosen = configured
            parsed = parse(raw[name], configured)
            values = parsed.values
            if parsed.bad is not None:
                text = f"column {name}: value does not fit configured type {configured}"
                reasons[parsed.bad & (reasons == None)] = text  # noqa: E711 - elementwise on an object array
        elif established is not None:
            chosen, parsed = widen(raw[name], established)
            values = parsed.values
        else:
            chosen = infer(raw[name])
            values = parse(raw[name], chosen).values
        change = _schema_change(name, chosen, configured, established, in_file, previous is not None)
        changes += [change] if change else []
        columns.append(values)
        schema_fields.append(pa.field(name, ARROW_TYPES[chosen]))
    table = pa.Table.from_arrays(columns, schema=pa.schema(schema_fields))
    return _Typed(table, reasons if (reasons != None).any() else None, changes)  # noqa: E711


def _as_text_table(table: pa.Table) -> pa.Table:
    columns = [c if pa.types.is_string(c.type) else pc.cast(c, pa.string()) for c in table.columns]
    return pa.table(columns, names=table.column_names)


def input_from_table(raw: pa.Table, spec: TableSpec, previous: pa.Schema | None, source: str) -> NewInput:
    """The exact path over a table already read (text columns, or typed ones)."""
    _check_keys(raw.column_names, spec, source)
    typed = _type_new(raw, spec, previous)

    def batches() -> Iterator[NewBatch]:
        offset = 0
        for batch in typed.table.to_batches(max_chunksize=SLOW_PATH_BATCH):
            reasons = typed.reasons[offset : offset + batch.num_rows] if typed.reasons is not None else None
            offset += batch.num_rows
            yield NewBatch(batch, reasons)

    return NewInput(typed.table.schema, batches(), typed.schema_changes, lambda rows: _as_text_table(raw.take(rows)))


def _arrange(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """File order to schema order; a column missing from the file is all null."""
    present = set(batch.schema.names)
    columns = [batch.column(f.name) if f.name in present else pa.nulls(batch.num_rows, f.type) for f in schema]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _grouped(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """Small reader batches joined into batches of about STREAM_BATCH_ROWS: fewer, longer vectorized steps."""
    group: list[pa.RecordBatch] = []
    count = 0
    for batch in batches:
        group.append(batch)
        count += batch.num_rows
        if count >= STREAM_BATCH_ROWS:
            yield from pa.Table.from_batches(group).combine_chunks().to_batches()
            group, count = [], 0
    if group:
        yield from pa.Table.from_batches(group).combine_chunks().to_batches()


def streamed_input(path: Path, source: str, spec: TableSpec, previous: pa.Schema | None) -> NewInput:
    """The fast path; its batches raise TypedReadFailed when the file needs the exact path."""
    names, sep = read_header(path, source, spec.delimiter)
    _check_keys(names, spec, source, sep)
    sampled: list[pa.Table] = []

    def sample() -> pa.Table:
        if not sampled:
            sampled.append(sample_strings(path, source, names, sep))
        return sampled[0]

    planned = _planned_schema(names, spec, previous, sample)
    schema = planned.schema
    read_types = {name: schema.field(name).type for name in names}
    batches = (
        NewBatch(_arrange(b, schema), None) for b in _grouped(typed_batches(path, source, names, sep, read_types))
    )
    return NewInput(
        schema,
        batches,
        planned.schema_changes,
        lambda rows: _as_text_table(read_csv_strings(path, source, sep).take(rows)),
    )
