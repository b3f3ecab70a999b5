"""The new side on Spark: the CSV cut into segments at the engine's boundaries, parsed by the engine's
reader in parallel, typed once for the whole file by the engine's rules.

The engine (:func:`snapcdc.engine.new_side.streamed_input`) plans the column types from the file's
first block and reads the file typed by that plan (the fast path); when a value does not fit (or a
configured type refuses a value) it types every column from the whole file's text instead (the exact
path, :func:`snapcdc.engine.new_side._type_new`). Both decisions need the whole file, so here they are
taken in two steps:

1. the driver reads the first block (a prefix of the object) and plans the schema with the engine's
   own ``_planned_schema``; every segment is parsed typed by the plan (:func:`probe`), as the
   engine's fast path parses it, and reports whether it parsed, ended on a record boundary and fit;
2. when some segment did not fit, each segment reports, per column, which types all its values fit
   (:func:`type_facts`, the engine's ``parse``); the driver combines them as ``infer`` and ``widen``
   would over the whole column (a type fits the column when it fits every segment; ``infer``'s
   sample test runs on the file's first rows, read on the driver) and :func:`typed_segment` types
   each segment by that decision as ``_type_new`` does.

A segment that does not end on a record boundary is joined with the next (the engine's rule,
``_ends_cleanly``); a file that segments cannot read (a NUL byte, a malformed record, a header
read two ways) is diffed by the engine itself on the driver, which refuses it with the same message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from snapcdc.engine.hash_columns import data_only
from snapcdc.engine.parts import (
    ARROW_TYPES,
    CHECKED_TYPES,
    INFERENCE_ORDER,
    LINE_PROBE_BYTES,
    MAX_BLOCK_SIZE,
    TypedRead,
    arrange,
    column_order,
    convert_options,
    csv_input,
    ends_cleanly,
    established_type,
    holds_nul,
    parse,
    parse_options,
    planned_schema,
    sample_fits,
    schema_change,
    type_name,
)
from snapcdc.engine.spec import TableSpec
from snapcdc.spark.sources import Source

OK, MISFIT, BROKEN = "ok", "misfit", "broken"


@dataclass(frozen=True)
class Piece:
    """A segment of the new input: bytes [start, stop) of a CSV, or row groups [start, stop) of a Parquet."""

    index: int
    start: int
    stop: int


@dataclass(frozen=True)
class Layout:
    """What every task needs to read the new input."""

    source: Source
    parquet: bool
    names: list[str]  # columns in file order
    sep: str
    pieces: list[Piece]


@dataclass(frozen=True)
class Probe:
    status: str  # OK (typed by the plan), MISFIT (parsed, a value does not fit the plan), BROKEN
    rows: int


@dataclass(frozen=True)
class Typing:
    """The decision for the whole file: the schema, and whether segments are read the fast way."""

    schema: pa.Schema
    schema_changes: list[dict[str, str]]
    fast: bool
    types: dict[str, str] = field(default_factory=dict)  # exact path: the chosen type per column


# -- segments --------------------------------------------------------------------------------------


def nominal_starts(size: int) -> list[int]:
    """Where the engine's segments nominally start (every SEGMENT_BYTES, read at call time)."""
    return list(range(csv_input.SEGMENT_BYTES, size, csv_input.SEGMENT_BYTES))


def line_start_after(source: Source, at: int, size: int) -> int:
    """The offset after the first line break at or past ``at`` (``size``: none before the end)."""
    while at < size:
        chunk = source.read(at, LINE_PROBE_BYTES)
        if not chunk:
            break
        found = chunk.find(b"\n")
        if found >= 0:
            return at + found + 1
        at += len(chunk)
    return size


def csv_pieces(source: Source, size: int, found: list[int]) -> list[Piece]:
    """The engine's segment starts (after the first line break past every SEGMENT_BYTES), from the
    line starts ``found`` after each nominal start (probed in parallel); a nominal start inside the
    previous segment's line (a line longer than a segment) is probed again from there."""
    starts = [0]
    for nominal, start in zip(nominal_starts(size), found, strict=True):
        if nominal < starts[-1]:
            start = line_start_after(source, starts[-1], size)
        if start >= size:
            break
        if start > starts[-1]:
            starts.append(start)
    starts.append(size)
    return [Piece(i, starts[i], starts[i + 1]) for i in range(len(starts) - 1)]


def parquet_pieces(source: Source) -> list[Piece]:
    with source.open() as handle:
        groups = pq.ParquetFile(handle).num_row_groups
    return [Piece(i, i, i + 1) for i in range(groups)] or [Piece(0, 0, 0)]


def joined(pieces: list[Piece], statuses: list[str]) -> list[Piece] | None:
    """Each BROKEN piece joined with the next; None when nothing is left to join."""
    out: list[Piece] = []
    changed, at = False, 0
    while at < len(pieces):
        piece = pieces[at]
        if statuses[at] == BROKEN and at + 1 < len(pieces):
            piece = Piece(len(out), piece.start, pieces[at + 1].stop)
            changed, at = True, at + 2
        else:
            piece, at = Piece(len(out), piece.start, piece.stop), at + 1
        out.append(piece)
    return out if changed else None


def _csv_bytes(layout: Layout, piece: Piece) -> bytes | None:
    """The piece's bytes from the line break before it, as the engine parses a segment (None: too big)."""
    at = max(piece.start - 1, 0)
    if piece.stop - at >= MAX_BLOCK_SIZE:
        return None
    return layout.source.read(at, piece.stop - at)


def _parse(layout: Layout, piece: Piece, data: bytes, options: pacsv.ConvertOptions) -> pa.Table:
    header = None if piece.start == 0 else layout.names
    read = pacsv.ReadOptions(use_threads=False, block_size=len(data) + 1, column_names=header)
    table = pacsv.read_csv(pa.BufferReader(data), read, parse_options(layout.sep), options)
    if table.column_names != layout.names:
        raise pa.ArrowInvalid("header read two ways")
    return table


def _parquet_rows(layout: Layout, piece: Piece) -> pa.Table:
    with layout.source.open() as handle:
        parquet = pq.ParquetFile(handle)
        if piece.stop <= piece.start:
            table = parquet.schema_arrow.empty_table()
        else:
            table = parquet.read_row_groups(list(range(piece.start, piece.stop)))
    return data_only(table)


def text_rows(layout: Layout, piece: Piece) -> pa.Table:
    """The piece's records, every column as text as read (Parquet: as stored)."""
    if layout.parquet:
        return _parquet_rows(layout, piece)
    data = _csv_bytes(layout, piece)
    if data is None:
        raise pa.ArrowInvalid("segment larger than a block")
    return _parse(layout, piece, data, convert_options(dict.fromkeys(layout.names, pa.string())))


def _typed_read(schema: pa.Schema, names: list[str]) -> TypedRead:
    """The engine's fast-path conversion (``typed_batches``) for types planned in ``schema``."""
    types = {name: schema.field(name).type for name in names}
    numbers = {c: types[c] for c in names if types[c] in CHECKED_TYPES}
    read_types = {c: pa.string() if c in numbers else types[c] for c in names}
    return TypedRead(convert_options(read_types), numbers)


def _fast_rows(layout: Layout, piece: Piece, schema: pa.Schema, data: bytes) -> pa.Table:
    convert = _typed_read(schema, layout.names)
    table = convert.numbers_of(_parse(layout, piece, data, convert.options))
    if any(holds_nul(batch) for batch in table.to_batches()):
        raise pa.ArrowInvalid("NUL byte in a text value")
    return table


def fast_piece(layout: Layout, piece: Piece, planned: pa.Schema, last: bool) -> tuple[Probe, pa.Table | None]:
    """The piece typed by the plan, as the engine's fast path reads it, when it parses, ends on a record
    boundary and fits (else its :func:`probe`, and no rows)."""
    data = _csv_bytes(layout, piece)
    if data is not None and b"\x00" not in data:
        try:
            table = _fast_rows(layout, piece, planned, data)
        except pa.ArrowInvalid:
            pass
        else:
            if last or ends_cleanly(table):
                batches = [arrange(b, planned) for b in table.to_batches()]
                return Probe(OK, table.num_rows), pa.Table.from_batches(batches, schema=planned)
    return probe(layout, piece, None, last), None


def probe(layout: Layout, piece: Piece, planned: pa.Schema | None, last: bool) -> Probe:
    """How the piece parses: typed by the plan as the engine's fast path would (``planned``; None:
    Parquet, or a plan already refused), else as text."""
    if layout.parquet:
        with layout.source.open() as handle:
            parquet = pq.ParquetFile(handle)
            rows = sum(parquet.metadata.row_group(g).num_rows for g in range(piece.start, piece.stop))
        return Probe(MISFIT, rows)
    data = _csv_bytes(layout, piece)
    if data is None or b"\x00" in data:
        return Probe(BROKEN, 0)
    if planned is not None:
        try:
            table = _fast_rows(layout, piece, planned, data)
        except pa.ArrowInvalid:
            pass
        else:
            if last or ends_cleanly(table):
                return Probe(OK, table.num_rows)
    try:
        text = _parse(layout, piece, data, convert_options(dict.fromkeys(layout.names, pa.string())))
    except pa.ArrowInvalid:
        return Probe(BROKEN, 0)
    if not last and not ends_cleanly(text):
        return Probe(BROKEN, 0)
    return Probe(MISFIT, text.num_rows)


# -- typing ------------------------------------------------------------------------------------------


def planned(names: list[str], spec: TableSpec, previous: pa.Schema | None, sample: pa.Table) -> Typing:
    """The engine's plan from the file's first block."""
    plan = planned_schema(names, spec, previous, lambda: sample)
    return Typing(plan.schema, plan.schema_changes, fast=True)


@dataclass(frozen=True)
class Facts:
    """Per column of a piece: whether every value is empty, and which types every value fits."""

    all_null: dict[str, bool]
    fits: dict[str, list[str]]
    stored: dict[str, str]  # the column's type name as read (text for a CSV)


def type_facts(
    layout: Layout, piece: Piece, spec: TableSpec, previous: pa.Schema | None, candidates: dict[str, list[str]]
) -> Facts:
    """What ``infer`` and ``widen`` need of this piece (``candidates``: the types to try per column)."""
    rows = text_rows(layout, piece)
    all_null, fits, stored = {}, {}, {}
    for name in rows.column_names:
        if spec.configured_type(name) is not None:
            continue
        column = rows[name]
        stored[name] = type_name(column.type)
        all_null[name] = column.null_count == len(column)
        fits[name] = [t for t in candidates.get(name, []) if parse(column, t).bad is None]
    return Facts(all_null, fits, stored)


def candidates(names: list[str], spec: TableSpec, previous: pa.Schema | None, head: pa.Table) -> dict[str, list[str]]:
    """Per column, the types to test on every piece: the established type, or the inference order's
    types passing ``infer``'s sample test on the file's first rows (``head``)."""
    out = {}
    for name in names:
        if spec.configured_type(name) is not None:
            continue
        established = established_type(name, previous)
        if established is not None:
            out[name] = [established]
        else:
            out[name] = [t for t in INFERENCE_ORDER if sample_fits(head[name], t)]
    return out


def exact_typing(
    names: list[str], spec: TableSpec, previous: pa.Schema | None, found: dict[str, list[str]], facts: list[Facts]
) -> Typing:
    """``_type_new``'s decision for the whole file from each piece's facts (``found``: candidates)."""
    types: dict[str, str] = {}
    changes: list[dict[str, str]] = []
    schema_fields = []
    for name in column_order(names, previous):
        configured, established, in_file = spec.configured_type(name), established_type(name, previous), name in names
        if not in_file:
            chosen = configured or established or "string"
        elif configured is not None:
            chosen = configured
        elif established is not None:
            chosen = established if all(established in f.fits[name] for f in facts) else "string"
        else:
            stored = {f.stored[name] for f in facts}
            if stored != {"string"} and len(stored) == 1:  # typed input (Parquet): infer keeps its type
                chosen = stored.pop()
            elif all(f.all_null[name] for f in facts):
                chosen = "string"
            else:
                fitting = [t for t in found[name] if all(t in f.fits[name] for f in facts)]
                chosen = fitting[0] if fitting else "string"
        types[name] = chosen
        change = schema_change(name, chosen, configured, established, in_file, previous is not None)
        changes += [change] if change else []
        schema_fields.append(pa.field(name, ARROW_TYPES[chosen]))
    return Typing(pa.schema(schema_fields), changes, fast=False, types=types)


def typed_rows(layout: Layout, piece: Piece, spec: TableSpec, typing: Typing) -> tuple[pa.Table, np.ndarray | None]:
    """The piece typed by the file's decision, in schema order, and per row why it is quarantined
    (a value not fitting its configured type), as the engine's fast or exact path types it."""
    if typing.fast:
        data = _csv_bytes(layout, piece)
        assert data is not None
        table = _fast_rows(layout, piece, typing.schema, data)
        batches = [arrange(b, typing.schema) for b in table.to_batches()]
        return pa.Table.from_batches(batches, schema=typing.schema), None
    raw = text_rows(layout, piece)
    columns = []
    reasons = np.full(raw.num_rows, None, dtype=object)
    for target in typing.schema:
        name, chosen = target.name, typing.types[target.name]
        if name not in raw.column_names:
            columns.append(pa.chunked_array([pa.nulls(raw.num_rows, target.type)]))
            continue
        parsed = parse(raw[name], chosen)
        if spec.configured_type(name) is not None and parsed.bad is not None:
            text = f"column {name}: value does not fit configured type {chosen}"
            reasons[parsed.bad & (reasons == None)] = text  # noqa: E711 - elementwise on an object array
        columns.append(parsed.values)
    table = pa.Table.from_arrays(columns, schema=typing.schema)
    return table, (reasons if (reasons != None).any() else None)  # noqa: E711


def read_sample(source: Source, work: Path, size: int) -> Path:
    """A local file whose first block reads as the object's first block (the engine's sample)."""
    if size <= csv_input.STREAM_BLOCK_SIZE + (1 << 20) or not source.is_s3:
        return source.fetch(work / "new.csv") if source.is_s3 else Path(source.location)
    # pyarrow's reader takes its first batch from the first block only: a prefix longer than a block
    # gives the same batch.
    return source.fetch_prefix(work / "new-prefix.csv", csv_input.STREAM_BLOCK_SIZE + (1 << 20))


def read_head(layout: Layout, statuses_rows: list[int], rows: int = 8000) -> pa.Table:
    """The file's first ``rows`` records as text (``infer``'s sample is taken from them)."""
    parts, count = [], 0
    for piece, piece_rows in zip(layout.pieces, statuses_rows, strict=True):
        if count >= rows:
            break
        if piece_rows:
            parts.append(text_rows(layout, piece))
            count += parts[-1].num_rows
    if not parts:
        return pa.table({n: pa.array([], pa.string()) for n in layout.names})
    return pa.concat_tables(parts).slice(0, rows)
