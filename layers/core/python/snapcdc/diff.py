"""The CDC engine: diff a new snapshot of a table against the previous accepted one.

Pure (pyarrow/numpy, no AWS). :func:`diff_files` streams a CSV file; :func:`diff_tables` does the same
on in-memory Arrow tables (tests, small inputs). Both run one core, :class:`_Differ`, batch by batch.

How it works (docs/design.md "CDC semantics" is the contract):

* The old side is the previous accepted snapshot. Its Parquet copy stores a 64-bit key hash and a
  128-bit row hash per row, so the old side costs one read of the key, date and hash columns; its
  full rows are read back only for the keys that were deleted (or carried forward).
* The new CSV is streamed in batches that pyarrow's reader threads convert straight to the table's
  stable types (:mod:`snapcdc.schema`). A value that does not convert (a column to widen, a value not
  fitting its configured type, a malformed line) stops the fast read, and the file is read again as
  text and typed exactly, column by column: rare, and it gives the same result.
* Each batch is hashed (vectorized, :mod:`snapcdc.hashing`), matched to the old side on the key hash,
  every matched pair verified on the real key values (a collision falls back to an exact join), and
  its accepted rows streamed to the new snapshot. Only inserted and updated rows are kept in memory.
* A matched row is unchanged when both 64-bit lanes of the row hash are equal and the date field is
  equal. Trusting a 128-bit hash is the design choice that lets the old side stay on disk: verifying
  values would mean reading every old row. Two independent, well-mixed 64-bit lanes make an
  accidental collision among n rows about n * 2**-128 likely (5M rows: ~1e-32); the data is
  exported tables, not an adversary crafting collisions.
* Bad rows (null/empty key, duplicated key, a value not fitting a configured type) are quarantined;
  their keys produce no event and an existing old row is carried forward into the new snapshot.
  Duplicates are known only at the end: when there are any, the streamed snapshot is rewritten once.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import json
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc
import pyarrow.parquet as pq

from snapcdc.csv_input import (
    InputError,
    TypedReadFailed,
    is_parquet,
    read_csv_strings,
    read_header,
    sample_strings,
    typed_batches,
)
from snapcdc.hashing import key_hash, row_hash_array, row_hash_lanes, row_lanes
from snapcdc.schema import ARROW_TYPES, conform, infer, parse, type_name, widen

if TYPE_CHECKING:
    from snapcdc.config import TableConfig

__all__ = [
    "CDC_OPERATION",
    "CDC_TIMESTAMP",
    "KEY_HASH",
    "QUARANTINE_REASON",
    "ROW_HASH",
    "SOURCE_RECORD",
    "DeleteGuardError",
    "DiffOutcome",
    "DiffResult",
    "DiffStats",
    "InputError",
    "TableSpec",
    "diff_files",
    "diff_tables",
]

CDC_OPERATION = "_cdc_operation"
CDC_TIMESTAMP = "_cdc_timestamp"
KEY_HASH = "_key_hash"
ROW_HASH = "_row_hash"
QUARANTINE_REASON = "_quarantine_reason"
SOURCE_RECORD = "_source_record"  # record number in the file, the header being record 1
HASH_COLUMNS = (KEY_HASH, ROW_HASH)
HASH_METADATA = b"snapcdc.hash"
HASH_VERSION = 1
SLOW_PATH_BATCH = 128 * 1024  # rows per batch when a whole table is already in memory
STREAM_BATCH_ROWS = 96 * 1024  # rows per batch diffed when streaming a CSV
HASHED_AHEAD = 4  # batches hashed ahead of matching (each ~10-15 MB)
SNAPSHOT_ROW_GROUP = 128 * 1024  # rows gathered per snapshot row group (fetching a few old rows decodes less)

NULL_KEY = "null or empty primary key"
DUPLICATE_KEY = "duplicate primary key"


class DeleteGuardError(Exception):
    """The snapshot would delete too large a share of the table; nothing was written."""

    def __init__(self, deletes: int, rows_old: int, max_ratio: float) -> None:
        self.deletes = deletes
        self.rows_old = rows_old
        self.ratio = deletes / rows_old if rows_old else 0.0
        self.max_ratio = max_ratio
        super().__init__(
            f"refusing snapshot: {deletes} deletes of {rows_old} rows "
            f"(ratio {self.ratio:.3f} > limit {max_ratio:.3f}); set allow_mass_delete to accept it"
        )


@dataclass(frozen=True)
class TableSpec:
    primary_key: tuple[str, ...]
    date_field: str | None = None
    column_types: Mapping[str, str] = field(default_factory=dict)
    delimiter: str | None = None  # None: detect ',' or ';' from the header line
    max_delete_ratio: float = 0.5
    allow_mass_delete: bool = False

    def __post_init__(self) -> None:
        if not self.primary_key:
            raise ValueError("primary_key needs at least one column")
        unknown = {t for t in self.column_types.values() if t not in ARROW_TYPES}
        if unknown:
            raise ValueError(f"unknown column types {sorted(unknown)}; use {sorted(ARROW_TYPES)}")

    @classmethod
    def from_config(cls, table: TableConfig) -> TableSpec:
        return cls(
            primary_key=tuple(table.primary_key),
            date_field=table.date_field,
            column_types=dict(table.column_types),
            delimiter=table.delimiter,
            max_delete_ratio=table.max_delete_ratio,
            allow_mass_delete=table.allow_mass_delete,
        )


@dataclass
class DiffStats:
    rows_old: int
    rows_new: int
    inserts: int
    updates: int
    deletes: int
    quarantined: int
    updates_without_date_bump: int
    date_only_updates: int
    rows_snapshot: int = 0  # rows in the new accepted snapshot
    carried_forward: int = 0  # old rows kept because their key was quarantined this run

    def as_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}


@dataclass
class DiffResult:
    """Table-level result of :func:`diff_tables` (nothing written)."""

    changes: pa.Table  # data columns + _cdc_operation + _cdc_timestamp
    snapshot: pa.Table  # accepted state: data columns + hash columns (+ hash signature metadata)
    quarantine: pa.Table | None
    stats: DiffStats
    schema: pa.Schema  # data schema, no hash/cdc columns
    schema_changes: list[dict[str, str]]

    @property
    def snapshot_data(self) -> pa.Table:
        return self.snapshot.drop_columns(list(HASH_COLUMNS)).replace_schema_metadata(None)


@dataclass
class DiffOutcome:
    stats: DiffStats
    changes_path: Path
    snapshot_path: Path
    full_load_path: Path | None
    quarantine_path: Path | None
    schema: pa.Schema
    schema_changes: list[dict[str, str]]
    seconds: float


# ---------------------------------------------------------------------------------------------
# Typing the new snapshot against the stable schema
# ---------------------------------------------------------------------------------------------
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


def _check_keys(names: list[str], spec: TableSpec, source: str) -> None:
    missing = [k for k in spec.primary_key if k not in names]
    if missing:
        raise InputError(source, 1, f"primary key column(s) {', '.join(missing)} missing from header")


def _planned_schema(
    names: list[str], spec: TableSpec, previous: pa.Schema | None, sample: Callable[[], pa.Table]
) -> tuple[pa.Schema, list[dict[str, str]]]:
    """The fast path's guess: configured type, else the established one, else inferred from the first
    block. If a later value does not convert, the exact path (:func:`_type_new`) takes over."""
    schema_fields, changes = [], []
    for name in _column_order(names, previous):
        configured, established, in_file = spec.column_types.get(name), _established(name, previous), name in names
        chosen = configured or established or (infer(sample()[name]) if in_file else "string")
        change = _schema_change(name, chosen, configured, established, in_file, previous is not None)
        changes += [change] if change else []
        schema_fields.append(pa.field(name, ARROW_TYPES[chosen]))
    return pa.schema(schema_fields), changes


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
            spec.column_types.get(name),
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


def _conform_table(table: pa.Table, schema: pa.Schema, source: str) -> pa.Table:
    columns = []
    for target in schema:
        if target.name not in table.column_names:
            columns.append(pa.chunked_array([pa.nulls(table.num_rows, target.type)]))
            continue
        column = table[target.name]
        if column.type != target.type:
            try:
                column = conform(column, type_name(target.type))
            except ValueError as error:
                raise InputError(source, None, f"column {target.name}: {error}") from None
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def _hash_signature(schema: pa.Schema, spec: TableSpec) -> tuple[str, list[str]]:
    """What the stored hashes depend on; stale hashes (schema or key changed) are recomputed."""
    date = spec.date_field if spec.date_field in schema.names else None
    row_columns = [n for n in schema.names if n not in spec.primary_key and n != date]
    described = {
        "version": HASH_VERSION,
        "key": [[k, type_name(schema.field(k).type)] for k in spec.primary_key],
        "row": [[n, type_name(schema.field(n).type)] for n in row_columns],
        "date": date,
    }
    return json.dumps(described, sort_keys=True), row_columns


# ---------------------------------------------------------------------------------------------
# The new side: typed batches, from a file (streamed) or from a table already in memory
# ---------------------------------------------------------------------------------------------
@dataclass
class _NewInput:
    schema: pa.Schema
    batches: Iterable[tuple[pa.RecordBatch, np.ndarray | None]]  # typed batch, quarantine reason per row
    schema_changes: list[dict[str, str]]
    text_rows: Callable[[np.ndarray], pa.Table]  # rows as they were read, as text (for the quarantine)


def _as_text_table(table: pa.Table) -> pa.Table:
    columns = [c if pa.types.is_string(c.type) else pc.cast(c, pa.string()) for c in table.columns]
    return pa.table(columns, names=table.column_names)


def _input_from_table(raw: pa.Table, spec: TableSpec, previous: pa.Schema | None, source: str) -> _NewInput:
    _check_keys(raw.column_names, spec, source)
    typed = _type_new(raw, spec, previous)

    def batches() -> Iterator[tuple[pa.RecordBatch, np.ndarray | None]]:
        offset = 0
        for batch in typed.table.to_batches(max_chunksize=SLOW_PATH_BATCH):
            reasons = typed.reasons[offset : offset + batch.num_rows] if typed.reasons is not None else None
            offset += batch.num_rows
            yield batch, reasons

    return _NewInput(typed.table.schema, batches(), typed.schema_changes, lambda rows: _as_text_table(raw.take(rows)))


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


def _streamed_input(path: Path, source: str, spec: TableSpec, previous: pa.Schema | None) -> _NewInput:
    """The fast path; its batches raise TypedReadFailed when the file needs the exact path."""
    names, sep = read_header(path, source, spec.delimiter)
    _check_keys(names, spec, source)
    sampled: list[pa.Table] = []

    def sample() -> pa.Table:
        if not sampled:
            sampled.append(sample_strings(path, source, names, sep))
        return sampled[0]

    schema, changes = _planned_schema(names, spec, previous, sample)
    read_types = {name: schema.field(name).type for name in names}
    batches = ((_arrange(b, schema), None) for b in _grouped(typed_batches(path, source, names, sep, read_types)))
    return _NewInput(
        schema, batches, changes, lambda rows: _as_text_table(read_csv_strings(path, source, sep).take(rows))
    )


# ---------------------------------------------------------------------------------------------
# The old side: keys, date and cached hashes in memory; full rows fetched only where needed
# ---------------------------------------------------------------------------------------------
@dataclass
class OldSnapshot:
    schema: pa.Schema  # data schema as stored
    signature: str | None  # what the cached hashes were computed over (None: no cached hashes)
    key_hashes: Callable[[], np.ndarray] | None  # cached key hashes, read first (None: no cached hashes)
    head: Callable[[], _Head] | None  # keys, date and cached row hashes (None: no cached hashes)
    fetch: Callable[[np.ndarray | None], pa.Table]  # data rows at sorted positions (None: all rows)
    lookup: Future[pd.Index | None] | None = None  # a hash lookup over key_hashes already being built

    @classmethod
    def from_table(cls, table: pa.Table, spec: TableSpec) -> OldSnapshot:
        """An accepted snapshot table (e.g. ``DiffResult.snapshot``), with or without hash columns."""
        metadata = table.schema.metadata or {}
        data = table.drop_columns([c for c in HASH_COLUMNS if c in table.column_names])
        data = data.replace_schema_metadata(None)
        cached = HASH_METADATA in metadata and all(c in table.column_names for c in HASH_COLUMNS)
        wanted = [*spec.primary_key, *([spec.date_field] if spec.date_field in data.column_names else [])]

        def fetch(positions: np.ndarray | None) -> pa.Table:
            return data if positions is None else data.take(positions)

        def head() -> _Head:
            return _Head(data.select(wanted), *row_hash_lanes(table[ROW_HASH]))

        return cls(
            schema=data.schema,
            signature=metadata[HASH_METADATA].decode() if cached else None,
            key_hashes=(lambda: table[KEY_HASH].to_numpy()) if cached else None,
            head=head if cached else None,
            fetch=fetch,
        )

    @classmethod
    def from_parquet(cls, path: Path, spec: TableSpec, name: str) -> OldSnapshot:
        """A snapshot Parquet written by this engine: reads keys, date and hashes only."""
        parquet = pq.ParquetFile(path)
        stored = parquet.schema_arrow
        data_names = [n for n in stored.names if n not in HASH_COLUMNS]
        missing = [k for k in spec.primary_key if k not in data_names]
        if missing:
            raise InputError(name, None, f"primary key column(s) {', '.join(missing)} not in the old snapshot")
        date = [spec.date_field] if spec.date_field is not None and spec.date_field in data_names else []
        wanted = [*spec.primary_key, *date]
        group_starts = np.cumsum([0] + [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)])
        schema = pa.schema([stored.field(n) for n in data_names])

        def fetch(positions: np.ndarray | None) -> pa.Table:
            if positions is None:
                return parquet.read(columns=data_names).replace_schema_metadata(None)
            # Groups are decoded a few at a time (threads across columns), keeping only the wanted rows.
            return _take_from_groups(
                positions, group_starts, schema, lambda groups: parquet.read_row_groups(groups, columns=data_names), 4
            )

        return cls(
            schema=schema,
            signature=(stored.metadata or {})[HASH_METADATA].decode(),
            key_hashes=lambda: _read_key_hashes(parquet),
            head=lambda: _read_head(parquet, wanted),
            fetch=fetch,
        )


def _take_from_groups(
    positions: np.ndarray,
    group_starts: np.ndarray,
    schema: pa.Schema,
    read: Callable[[list[int]], pa.Table],
    at_once: int,
) -> pa.Table:
    """Rows at sorted ``positions`` of a file stored in groups of rows (``group_starts``: first row of
    each group, then the row count), reading only the groups that hold some, ``at_once`` per read."""
    cuts = np.searchsorted(positions, group_starts)
    groups = [g for g in range(len(group_starts) - 1) if cuts[g + 1] > cuts[g]]
    pieces = [schema.empty_table()]
    for first in range(0, len(groups), at_once):
        chosen, offset, within = groups[first : first + at_once], 0, []
        for group in chosen:
            within.append(positions[cuts[group] : cuts[group + 1]] - group_starts[group] + offset)
            offset += group_starts[group + 1] - group_starts[group]
        pieces.append(read(chosen).take(np.concatenate(within)).replace_schema_metadata(None))
    return pa.concat_tables(pieces)


@dataclass
class _Head:
    keys: pa.Table
    row_a: np.ndarray
    row_b: np.ndarray


def _read_key_hashes(parquet: pq.ParquetFile) -> np.ndarray:
    """The cached key hashes, a row group at a time into one array (no second copy while joining)."""
    key_hash, at = np.empty(parquet.metadata.num_rows, np.uint64), 0
    for group in range(parquet.num_row_groups):
        part = parquet.read_row_group(group, columns=[KEY_HASH])[KEY_HASH].to_numpy()
        key_hash[at : at + len(part)] = part
        at += len(part)
    return key_hash


def _read_head(parquet: pq.ParquetFile, wanted: list[str]) -> _Head:
    """Keys, date and row hashes of a stored snapshot, read a row group at a time (a whole-column
    read needs about twice the memory while it decodes)."""
    rows = parquet.metadata.num_rows
    row_a, row_b = np.empty(rows, np.uint64), np.empty(rows, np.uint64)
    pieces, at = [], 0
    for group in range(parquet.num_row_groups):
        part = parquet.read_row_group(group, columns=[*wanted, ROW_HASH])
        count = part.num_rows
        row_a[at : at + count], row_b[at : at + count] = row_hash_lanes(part[ROW_HASH])
        pieces.append(part.select(wanted))
        at += count
    if not pieces:
        return _Head(pa.schema([parquet.schema_arrow.field(n) for n in wanted]).empty_table(), row_a, row_b)
    keys = pa.concat_tables(pieces)
    del pieces
    head = _Head(pa.table({name: _one_chunk(keys[name]) for name in wanted}), row_a, row_b)
    del keys
    pa.default_memory_pool().release_unused()  # the pieces' memory: hundreds of MB on a big table
    return head


class _OldIndex:
    """The old side ready for matching: keys and hashes conformed to the new schema, a hash lookup."""

    def __init__(
        self, old: OldSnapshot, schema: pa.Schema, spec: TableSpec, signature: str, row_columns: list[str], name: str
    ) -> None:
        self.snapshot = old
        self.name = name
        self.schema = schema
        if old.signature == signature and old.key_hashes is not None and old.head is not None:
            self.key_hash = old.key_hashes()
            # The lookup (the slow part) is built while the keys and row hashes are read.
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="old-lookup") as builder:
                lookup = old.lookup or builder.submit(_hash_lookup, self.key_hash)
                head = old.head()
                key_and_date = pa.schema([schema.field(c) for c in head.keys.column_names])
                self.keys = _conform_table(head.keys, key_and_date, name)
                self.row_a, self.row_b = head.row_a, head.row_b
                self.lookup = lookup.result()
        else:  # stale or missing hashes: recompute once from the full old rows
            full = _conform_table(old.fetch(None), schema, name)
            date = [spec.date_field] if spec.date_field in schema.names else []
            self.keys = full.select([*spec.primary_key, *date])
            self.key_hash = key_hash(full, spec.primary_key)
            self.row_a, self.row_b = row_lanes(full, row_columns)
            self.lookup = _hash_lookup(self.key_hash)
        self.keys = pa.table({name: _one_chunk(self.keys[name]) for name in self.keys.column_names})
        self.num_rows = self.keys.num_rows
        self.key_names = list(spec.primary_key)
        # Rows that are not part of the old side: a key occurring twice in an old side read from a
        # file never accepted (a stored snapshot has none). Checked only when the key hashes repeat.
        self.excluded = np.zeros(0, dtype=np.int64)
        self.kept: np.ndarray | None = None  # positions the lookup's entries stand for (None: all)
        if self.lookup is None:
            self.excluded = _duplicate_rows(self.keys.select(self.key_names), self.key_hash, np.arange(self.num_rows))
            if len(self.excluded):
                self.kept = np.setdiff1d(np.arange(self.num_rows), self.excluded)
                self.lookup = _hash_lookup(self.key_hash[self.kept])

    def match(self, keys: pa.RecordBatch, key_hash: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """For each of ``rows``, the old position with the same key, or -1."""
        if self.num_rows == 0 or len(rows) == 0:
            return np.full(len(rows), -1, dtype=np.int64)
        if self.lookup is not None:
            positions = self.lookup.get_indexer(key_hash[rows]).astype(np.int64, copy=False)
            hit = positions >= 0
            if self.kept is not None:
                positions[hit] = self.kept[positions[hit]]
            if self._same_keys(keys, rows[hit], positions[hit]):  # a collision must never pair different keys
                return positions
        return self._match_exact(keys, rows)

    def _same_keys(self, keys: pa.RecordBatch, rows: np.ndarray, positions: np.ndarray) -> bool:
        every_row = len(rows) == keys.num_rows  # the usual case: no take on the new side
        for name in self.key_names:
            new = keys.column(name) if every_row else keys.column(name).take(rows)
            same = pc.equal(new, self.keys[name].take(positions))
            if not pc.all(pc.fill_null(same, False)).as_py():
                return False
        return True

    def _match_exact(self, keys: pa.RecordBatch, rows: np.ndarray) -> np.ndarray:
        left = pa.Table.from_batches([keys.take(rows)]).append_column("__new", pa.array(np.arange(len(rows))))
        right = self.keys.select(self.key_names).append_column("__old", pa.array(np.arange(self.num_rows)))
        if len(self.excluded):
            keep = np.ones(self.num_rows, dtype=bool)
            keep[self.excluded] = False
            right = right.filter(pa.array(keep))
        joined = left.join(right, keys=self.key_names, join_type="left outer")
        positions = np.full(len(rows), -1, dtype=np.int64)
        positions[joined["__new"].to_numpy()] = joined["__old"].fill_null(-1).to_numpy()
        return positions

    def rows(self, positions: np.ndarray) -> pa.Table:
        """Full old rows at sorted ``positions``, conformed to the new schema."""
        if len(positions) == 0:
            return self.schema.empty_table()
        return _conform_table(self.snapshot.fetch(positions), self.schema, self.name)


def _hash_lookup(key_hash: np.ndarray) -> pd.Index | None:
    """A hash table from key hash to old position; None when distinct keys share a 64-bit hash
    (then every batch is joined on the key values)."""
    index = pd.Index(key_hash)
    return index if index.is_unique else None


def _one_chunk(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """The column as one chunk: take() on a many-chunked string column concatenates it on every call."""
    if column.num_chunks <= 1:
        return column
    if pa.types.is_string(column.type) and column.nbytes >= 2**31 - 1:
        column = column.cast(pa.large_string())  # 32-bit offsets cannot hold it in one chunk
    return pa.chunked_array([pa.concat_arrays(column.chunks)], type=column.type)


# ---------------------------------------------------------------------------------------------
# Keys
# ---------------------------------------------------------------------------------------------
def _null_key_mask(keys: pa.Table | pa.RecordBatch) -> np.ndarray:
    mask = np.zeros(keys.num_rows, dtype=bool)
    for column in keys.columns:
        missing = pc.is_null(column)
        if pa.types.is_string(column.type):
            missing = pc.or_(missing, pc.fill_null(pc.equal(column, ""), False))
        mask |= _mask_of(missing)
    return mask


def _duplicate_rows(keys: pa.Table, key_hash: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions (among ``rows``) whose key occurs more than once; exact on real key values."""
    if len(rows) < 2 or not _repeats(key_hash[rows]):
        return np.zeros(0, dtype=np.int64)
    hashes = pa.array(key_hash[rows])
    counts = pc.value_counts(hashes)
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if len(repeated) == 0:
        return np.zeros(0, dtype=np.int64)
    candidates = rows[_mask_of(pc.is_in(hashes, value_set=repeated))]
    names = list(keys.column_names)
    table = keys.take(candidates).append_column("__row", pa.array(candidates))
    grouped = table.group_by(names).aggregate([("__row", "count")])
    joined = table.join(grouped, keys=names)
    repeated_rows = joined.filter(pc.greater(joined["__row_count"], 1))["__row"]
    return np.sort(repeated_rows.to_numpy())


def _repeats(hashes: np.ndarray) -> bool:
    """Whether a value occurs twice (numpy's vectorized sort is several times faster than a hash table)."""
    ordered = np.sort(hashes)
    return bool((ordered[1:] == ordered[:-1]).any())


def _mask_of(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=bool)


# ---------------------------------------------------------------------------------------------
# Where the new snapshot goes, batch by batch: memory (diff_tables) or a Parquet file (diff_files)
# ---------------------------------------------------------------------------------------------
def _snapshot_schema(schema: pa.Schema, signature: str) -> pa.Schema:
    hashes = [pa.field(KEY_HASH, pa.uint64()), pa.field(ROW_HASH, pa.binary(16))]
    return pa.schema([*schema, *hashes], metadata={HASH_METADATA: signature.encode()})


def _parquet_options(
    schema: pa.Schema, sample: pa.Table, codec: str = "snappy", indexed: list[str] | None = None
) -> dict[str, object]:
    """Writer options for a file whose first rows are ``sample`` (they decide which columns to compress
    and which to dictionary-encode). Statistics go on every data column, or on ``indexed`` only."""
    # Hashes are random bytes: dictionary encoding, compression and statistics only cost time there.
    # Dictionary encoding pays off for repetitive text; on numbers, timestamps and ids it is wasted.
    names = schema.names
    texts = [f.name for f in schema if pa.types.is_string(f.type) and f.name not in HASH_COLUMNS]
    dictionary = [name for name in texts if _repetitive(sample[name])]
    plain = set(HASH_COLUMNS) | _incompressible(sample, codec, dictionary)
    return {
        "compression": {c: ("none" if c in plain else codec) for c in names},
        "use_dictionary": dictionary,
        "write_statistics": [c for c in names if c not in HASH_COLUMNS] if indexed is None else indexed,
    }


def _repetitive(column: pa.ChunkedArray) -> bool:
    """Whether the column's first rows repeat values (at most half distinct): worth a dictionary."""
    probe = column.slice(0, _COMPRESSION_PROBE_ROWS)
    return pc.count_distinct(probe).as_py() <= (len(probe) - probe.null_count) // 2


# Compressing a column that shrinks less than this (random ids such as UUIDs) costs time for nothing.
_WORTH_COMPRESSING = 0.9
_COMPRESSION_PROBE_ROWS = 16_384


def _incompressible(sample: pa.Table, codec: str, dictionary: list[str]) -> set[str]:
    """Columns whose first rows, written as Parquet, shrink by less than 10% under ``codec``."""
    if codec == "none":
        return set()
    probe = sample.slice(0, _COMPRESSION_PROBE_ROWS)
    found = set()
    for name in probe.column_names:
        if name in HASH_COLUMNS:
            continue
        sizes = [_parquet_bytes(probe.select([name]), each, name in dictionary) for each in (codec, "none")]
        if sizes[0] > _WORTH_COMPRESSING * sizes[1]:
            found.add(name)
    return found


def _parquet_bytes(table: pa.Table, codec: str, dictionary: bool) -> int:
    """Size of ``table`` written as Parquet (in memory): pages as the real file would hold them."""
    out = pa.BufferOutputStream()
    pq.write_table(table, out, compression=codec, use_dictionary=dictionary, write_statistics=False)
    return out.getvalue().size


# The snapshot is the engine's own state, read back on every run: LZ4 decodes several times faster
# than Snappy (Athena engine 3 and Spark read it; the change files for users stay Snappy).
SNAPSHOT_CODEC = "lz4"


class _MemorySnapshot:
    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.batches: list[pa.RecordBatch] = []
        self.table = schema.empty_table()

    def write(self, batch: pa.RecordBatch, key_a: np.ndarray, row_a: np.ndarray, row_b: np.ndarray) -> None:
        self.batches.append(_with_hashes(batch, key_a, row_a, row_b, self.schema))

    def finish(self, drop: np.ndarray, extra: pa.Table) -> None:
        table = pa.Table.from_batches(self.batches, schema=self.schema)
        if len(drop):
            keep = np.ones(table.num_rows, dtype=bool)
            keep[drop] = False
            table = table.filter(pa.array(keep))
        self.table = pa.concat_tables([table, extra.cast(self.schema)])

    def abort(self) -> None:
        self.batches.clear()


class _ParquetOutput:
    """A Parquet file written a row group at a time in a thread of its own (the encoder releases the
    GIL); its codecs are chosen from its first row group. ``shape`` turns a row group of the snapshot
    into this file's rows. ``indexed``: the columns given statistics (None: every data column)."""

    def __init__(
        self,
        path: Path,
        codec: str,
        shape: Callable[[pa.Table], pa.Table],
        snapshot: pa.Schema,
        indexed: list[str] | None = None,
    ) -> None:
        self.path = path
        self.codec = codec
        self.shape = shape
        self.indexed = indexed
        self.empty = snapshot.empty_table()  # what an empty snapshot writes: still a file
        self.writer: pq.ParquetWriter | None = None
        self.options: dict[str, object] = {}
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-writer")
        self.pending: Future[None] | None = None

    def submit(self, rows: pa.Table) -> None:
        """Writes ``rows`` (one row group) while the next ones are diffed."""
        self.wait()
        self.pending = self.thread.submit(self._write, rows)

    def _write(self, rows: pa.Table) -> None:
        shaped = self.shape(rows)
        self._opened(shaped).write_table(shaped, SNAPSHOT_ROW_GROUP * 2)

    def _opened(self, first: pa.Table) -> pq.ParquetWriter:
        if self.writer is None:
            self.options = _parquet_options(first.schema, first, self.codec, self.indexed)
            self.writer = pq.ParquetWriter(self.path, first.schema, **self.options)  # type: ignore[arg-type]
        return self.writer

    def finish(self, drop: np.ndarray, extra: pa.Table) -> None:
        """Completes the file in its thread (see :meth:`close`): the last rows, or when duplicates were
        found at the end (rare), a rewrite without their rows (``drop``, places in the file)."""
        self.wait()
        self.pending = self.thread.submit(self._complete, drop, extra)

    def _complete(self, drop: np.ndarray, extra: pa.Table) -> None:
        if len(drop) == 0 and extra.num_rows:
            self._write(extra)
        self._closed()
        if len(drop) == 0:
            return
        table = pq.read_table(self.path)
        keep = np.ones(table.num_rows, dtype=bool)
        keep[drop] = False
        table = pa.concat_tables([table.filter(pa.array(keep)), self.shape(extra).cast(table.schema)])
        pq.write_table(table, self.path, **self.options)  # type: ignore[arg-type]

    def close(self) -> None:
        """Waits until the file is complete."""
        try:
            self.wait()
        finally:
            self.thread.shutdown()

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the error that made us abort is the one to report
            self.wait()
        with contextlib.suppress(Exception):
            self._closed()
        self.thread.shutdown()
        self.path.unlink(missing_ok=True)

    def _closed(self) -> None:
        """Closes the file (an empty snapshot's too: it is still a file with the schema)."""
        self._opened(self.shape(self.empty)).close()

    def wait(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()


class _ParquetSnapshot:
    """The new snapshot as a Parquet file, gathered into row groups; a first snapshot's user-facing
    files (``copies``: path and shape) are written beside it from the same row groups. The snapshot
    is the engine's own state, looked up by key and date: only those columns get statistics."""

    def __init__(
        self,
        path: Path,
        schema: pa.Schema,
        spec: TableSpec,
        copies: Iterable[tuple[Path, Callable[[pa.Table], pa.Table]]] = (),
    ) -> None:
        self.schema = schema
        date = [spec.date_field] if spec.date_field is not None and spec.date_field in schema.names else []
        indexed = [*spec.primary_key, *date]
        self.outputs = [_ParquetOutput(path, SNAPSHOT_CODEC, lambda rows: rows, schema, indexed)]
        self.outputs += [_ParquetOutput(copy, "snappy", shape, schema) for copy, shape in copies]
        self.gathered: list[pa.RecordBatch] = []
        self.gathered_rows = 0

    def write(self, batch: pa.RecordBatch, key_a: np.ndarray, row_a: np.ndarray, row_b: np.ndarray) -> None:
        self.gathered.append(_with_hashes(batch, key_a, row_a, row_b, self.schema))
        self.gathered_rows += batch.num_rows
        if self.gathered_rows >= SNAPSHOT_ROW_GROUP:
            self._submit()

    def _submit(self) -> None:
        if self.gathered:
            rows = pa.Table.from_batches(self.gathered, schema=self.schema)
            for output in self.outputs:
                output.submit(rows)
            self.gathered, self.gathered_rows = [], 0

    def finish(self, drop: np.ndarray, extra: pa.Table) -> None:
        """Hands the last rows to the writers, which complete the files while the change set is
        written: :meth:`close` waits for them."""
        self._submit()
        for output in self.outputs:
            output.finish(drop, extra.cast(self.schema))

    def close(self) -> None:
        errors = []
        for output in self.outputs:
            try:
                output.close()
            except Exception as error:  # every writer is waited for; the first error is reported
                errors.append(error)
        if errors:
            raise errors[0]

    def abort(self) -> None:
        for output in self.outputs:
            output.abort()


class _ScratchSnapshot:
    """An old side read from a file never accepted (a CSV), accepted once for this diff. What the diff
    reads of an old side (key hashes, keys, date, row hashes) stays in memory, and the other columns
    go to an uncompressed Arrow file, written with no encoding work, for reading back the few deleted
    rows."""

    def __init__(self, path: Path, spec: TableSpec, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema  # data and hash columns, the hash signature in its metadata
        self.data_schema = pa.schema([f for f in schema if f.name not in HASH_COLUMNS])
        date = [spec.date_field] if spec.date_field in self.data_schema.names else []
        self.wanted = [*spec.primary_key, *date]
        self.stored = pa.schema([f for f in self.data_schema if f.name not in self.wanted])
        self.writer = pa.ipc.new_file(str(path), self.stored)
        self.batch_starts = [0]
        self.key_hash_parts: list[np.ndarray] = []
        self.row_a_parts: list[np.ndarray] = []
        self.row_b_parts: list[np.ndarray] = []
        self.head_parts: list[pa.RecordBatch] = []
        self.kept: np.ndarray | None = None  # rows of the file that are part of the old side (None: all)
        self.lookup: Future[pd.Index | None] | None = None

    def write(self, batch: pa.RecordBatch, key_a: np.ndarray, row_a: np.ndarray, row_b: np.ndarray) -> None:
        self.writer.write_batch(batch.select(self.stored.names))
        self.batch_starts.append(self.batch_starts[-1] + batch.num_rows)
        self.key_hash_parts.append(key_a)
        self.row_a_parts.append(row_a)
        self.row_b_parts.append(row_b)
        self.head_parts.append(batch.select(self.wanted))

    def finish(self, drop: np.ndarray, extra: pa.Table) -> None:
        for batch in extra.cast(self.schema).to_batches():
            self.write(batch, batch.column(KEY_HASH).to_numpy(), *row_hash_lanes(batch.column(ROW_HASH)))
        self.writer.close()
        self.key_hash = _joined(self.key_hash_parts, np.uint64)
        if len(drop):  # duplicates found at the end: their rows stay in the file, unread
            self.kept = np.delete(np.arange(len(self.key_hash)), drop)
            self.key_hash = np.delete(self.key_hash, drop)
        # The old side's hash lookup (the slow part of indexing it) is built while the rest is gathered.
        builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="old-lookup")
        self.lookup = builder.submit(_hash_lookup, self.key_hash)
        builder.shutdown(wait=False)
        self.row_a, self.row_b = _joined(self.row_a_parts, np.uint64), _joined(self.row_b_parts, np.uint64)
        heads = pa.Table.from_batches(self.head_parts, self.data_schema.empty_table().select(self.wanted).schema)
        self.key_hash_parts, self.row_a_parts, self.row_b_parts, self.head_parts = [], [], [], []
        self.keys = pa.table({name: _one_chunk(heads[name]) for name in self.wanted})
        del heads
        if self.kept is not None:
            self.row_a, self.row_b = np.delete(self.row_a, drop), np.delete(self.row_b, drop)
            self.keys = self.keys.take(self.kept)

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the error that made us abort is the one to report
            self.writer.close()
        self.path.unlink(missing_ok=True)

    def old_side(self) -> OldSnapshot:
        """The accepted old side. Its key hashes and row hashes are handed over to the index that asks
        for them (or dropped when the index recomputes them from the full rows); the keys and date
        are shared with it, and the sink keeps the file for the other columns."""
        key_hash, head = [self.key_hash], [_Head(self.keys, self.row_a, self.row_b)]
        del self.key_hash, self.row_a, self.row_b

        def fetch(positions: np.ndarray | None) -> pa.Table:
            if positions is None:  # stale hashes (the new file's schema differs): recomputed from these rows
                key_hash.clear()
                head.clear()
                snapshot.lookup = None
            return self.fetch(positions)

        snapshot = OldSnapshot(
            schema=self.data_schema,
            signature=(self.schema.metadata or {})[HASH_METADATA].decode(),
            key_hashes=key_hash.pop,
            head=head.pop,
            fetch=fetch,
            lookup=self.lookup,
        )
        self.lookup = None
        return snapshot

    def fetch(self, positions: np.ndarray | None) -> pa.Table:
        """Rows at sorted ``positions`` of the old side (None: all): keys and date from memory, the
        other columns read from the file a batch at a time."""
        # The file's rows: the old side's, and those set aside as duplicates (``kept`` leaves them out).
        rows = positions if self.kept is None else self.kept if positions is None else self.kept[positions]
        with pa.OSFile(str(self.path)) as file:  # read, not mapped: mapped pages would count as memory
            reader = pa.ipc.open_file(file)
            if rows is None:
                stored = reader.read_all()
            else:
                starts = np.array(self.batch_starts)
                stored = _take_from_groups(
                    rows, starts, self.stored, lambda groups: pa.Table.from_batches([reader.get_batch(groups[0])]), 1
                )
        head = self.keys if positions is None else self.keys.take(positions)
        columns = [head[name] if name in self.wanted else stored[name] for name in self.data_schema.names]
        return pa.Table.from_arrays(columns, schema=self.data_schema)


_Sink = _MemorySnapshot | _ParquetSnapshot | _ScratchSnapshot


# ---------------------------------------------------------------------------------------------
# The core
# ---------------------------------------------------------------------------------------------
def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _with_cdc(table: pa.Table, operation: str, observed_at: datetime) -> pa.Table:
    count = table.num_rows
    table = table.append_column(CDC_OPERATION, pa.repeat(pa.scalar(operation, pa.string()), count))
    return table.append_column(CDC_TIMESTAMP, pa.repeat(pa.scalar(observed_at, pa.timestamp("us", tz="UTC")), count))


def _with_hashes(
    table: pa.Table | pa.RecordBatch, key_a: np.ndarray, row_a: np.ndarray, row_b: np.ndarray, schema: pa.Schema
) -> pa.RecordBatch | pa.Table:
    columns = [*table.columns, pa.array(key_a, type=pa.uint64()), row_hash_array(row_a, row_b)]
    if isinstance(table, pa.RecordBatch):
        return pa.RecordBatch.from_arrays(columns, schema=schema)
    return pa.Table.from_arrays(columns, schema=schema)


@dataclass
class _Picked:
    """Rows of one kind (inserts or updates) kept from the batches, with their row numbers."""

    batches: list[pa.RecordBatch] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)
    without_bump: list[np.ndarray] = field(default_factory=list)
    date_only: list[np.ndarray] = field(default_factory=list)

    def add(
        self, batch: pa.RecordBatch, positions: np.ndarray, offset: int, without_bump: np.ndarray, date_only: np.ndarray
    ) -> None:
        if len(positions):
            self.batches.append(batch.take(pa.array(positions)))
            self.rows.append(positions + offset)
            self.without_bump.append(without_bump)
            self.date_only.append(date_only)

    def table(self, schema: pa.Schema, dropped: np.ndarray) -> tuple[pa.Table, int, int]:
        """The kept rows minus ``dropped`` row numbers; counts of updates without date bump, date-only."""
        table = pa.Table.from_batches(self.batches, schema=schema)
        if not self.rows:
            return table, 0, 0
        keep = ~np.isin(np.concatenate(self.rows), dropped)
        without_bump, date_only = np.concatenate(self.without_bump)[keep], np.concatenate(self.date_only)[keep]
        if not keep.all():
            table = table.filter(pa.array(keep))
        return table, int(without_bump.sum()), int(date_only.sum())


@dataclass
class _Hashed:
    batch: pa.RecordBatch
    keys: pa.RecordBatch
    key_a: np.ndarray
    row_a: np.ndarray
    row_b: np.ndarray
    null_key: np.ndarray
    disputed: np.ndarray
    reason: np.ndarray | None  # why each disputed row is quarantined (None: no row is)
    old_pos: np.ndarray  # per row: the old position with the same key, or -1
    updated: np.ndarray  # rows (positions in the batch) that are updates
    without_bump: np.ndarray  # per update: its date field did not advance
    date_only: np.ndarray  # per update: only its date field changed


class _Differ:
    """Diffs the new snapshot batch by batch against the old side; see the module docstring."""

    def __init__(
        self,
        old: OldSnapshot | None,
        schema: pa.Schema,
        spec: TableSpec,
        sink_for: Callable[[pa.Schema], _Sink],
        old_name: str,
        keep_first_inserts: bool,
        find_duplicates: bool = True,
    ) -> None:
        self.spec = spec
        self.keep_first_inserts = keep_first_inserts
        self.find_duplicates = find_duplicates
        self.first_inserts = 0
        self.schema = schema
        self.signature, self.row_columns = _hash_signature(schema, spec)
        self.date = spec.date_field if spec.date_field in schema.names else None
        self.has_old = old is not None
        self._old_index: Future[_OldIndex] | None = None
        if old is not None:  # read and indexed in the background while the first batches are read and hashed
            background = ThreadPoolExecutor(max_workers=1, thread_name_prefix="old-side")
            self._old_index = background.submit(
                _OldIndex, old, schema, spec, self.signature, self.row_columns, old_name
            )
            background.shutdown(wait=False)
        self._seen: np.ndarray | None = None
        self._stamp: np.ndarray | None = None
        self.repeated: list[np.ndarray] = []  # old positions met by more than one new row
        self.sink = sink_for(_snapshot_schema(schema, self.signature))
        self.rows_new = 0
        self.old_of_new: list[np.ndarray] = []  # per row: the old position with the same key, or -1
        self.accepted: list[np.ndarray] = []
        # Keyed rows with no old match, for finding duplicates among them (matched rows sharing an old
        # position are duplicates already proven on the real key values).
        self.unmatched_keys: list[pa.RecordBatch] = []
        self.unmatched_hash: list[np.ndarray] = []
        self.unmatched_rows: list[np.ndarray] = []
        self.disputed: list[tuple[np.ndarray, np.ndarray]] = []  # (row numbers, reasons)
        self.inserts = _Picked()
        self.updates = _Picked()

    @property
    def old(self) -> _OldIndex | None:
        return self._old_index.result() if self._old_index is not None else None

    @property
    def seen(self) -> np.ndarray:
        """Per old row: whether a new row has its key."""
        if self._seen is None:
            self._seen = np.zeros(self.old.num_rows if self.old is not None else 0, dtype=bool)
            if self.old is not None:
                self._seen[self.old.excluded] = True  # not part of the old side: never deleted
        return self._seen

    def _mark_seen(self, positions: np.ndarray) -> None:
        """Marks old rows as seen, noting those met again: earlier in the file or twice in this batch."""
        if self._stamp is None:
            self._stamp = np.zeros(len(self.seen), dtype=np.int32)
        order = np.arange(len(positions), dtype=np.int32)
        self._stamp[positions] = order  # of two rows with the same old position, the last one wins
        again = self.seen[positions] | (self._stamp[positions] != order)
        if again.any():
            self.repeated.append(positions[again])
        self.seen[positions] = True

    def prepare(self, batch: pa.RecordBatch, reasons: np.ndarray | None) -> _Hashed:
        """The part of a batch's work that reads no state of the run (hashing, matching, comparing):
        runs in a stage of its own, a few batches ahead of :meth:`add` and several at a time."""
        keys = batch.select(list(self.spec.primary_key))
        key_a = key_hash(batch, self.spec.primary_key)
        row_a, row_b = row_lanes(batch, self.row_columns)
        null_key = _null_key_mask(keys)
        if reasons is None:
            disputed = null_key
            reason = np.full(batch.num_rows, NULL_KEY, dtype=object) if null_key.any() else None
        else:
            reason = reasons.copy()
            reason[null_key & (reason == None)] = NULL_KEY  # noqa: E711 - elementwise test on an object array
            disputed = reason != None  # noqa: E711
        old_pos = np.full(batch.num_rows, -1, dtype=np.int64)
        updated, without_bump, date_only = np.zeros(0, dtype=np.int64), np.zeros(0, bool), np.zeros(0, bool)
        old = self.old
        if old is not None:
            keyed = np.flatnonzero(~null_key)
            old_pos[keyed] = old.match(keys, key_a, keyed)
            matched = np.flatnonzero(~disputed & (old_pos >= 0))
            updated, without_bump, date_only = self._compare(old, batch, matched, old_pos[matched], row_a, row_b)
        return _Hashed(
            batch, keys, key_a, row_a, row_b, null_key, disputed, reason, old_pos, updated, without_bump, date_only
        )

    def add(self, hashed: _Hashed) -> None:
        batch, keys, key_a, row_a, row_b = hashed.batch, hashed.keys, hashed.key_a, hashed.row_a, hashed.row_b
        null_key, disputed = hashed.null_key, hashed.disputed
        count, offset = batch.num_rows, self.rows_new
        self.rows_new += count
        accepted = ~disputed
        old_pos = hashed.old_pos
        if self.has_old:
            self._mark_seen(old_pos[old_pos >= 0])

        inserted = np.flatnonzero(accepted & (old_pos < 0))
        none = np.zeros(len(inserted), dtype=bool)
        if self.has_old or self.keep_first_inserts:
            self.inserts.add(batch, inserted, offset, none, none)
        else:
            self.first_inserts += len(inserted)
        self.updates.add(batch, hashed.updated, offset, hashed.without_bump, hashed.date_only)

        self.old_of_new.append(old_pos)
        self.accepted.append(accepted)
        unmatched = np.flatnonzero(~null_key & (old_pos < 0))
        if len(unmatched) and self.find_duplicates:
            # take() copies: a string column read from CSV may share its buffer with the whole block.
            self.unmatched_keys.append(keys.take(pa.array(unmatched)))
            self.unmatched_hash.append(key_a[unmatched])
            self.unmatched_rows.append(unmatched + offset)
        if hashed.reason is not None and disputed.any():
            bad = np.flatnonzero(disputed)
            self.disputed.append((bad + offset, hashed.reason[bad]))
            batch, key_a, row_a, row_b = (
                batch.filter(pa.array(accepted)),
                key_a[accepted],
                row_a[accepted],
                row_b[accepted],
            )
        self.sink.write(batch, key_a, row_a, row_b)

    def _compare(
        self,
        old: _OldIndex,
        batch: pa.RecordBatch,
        matched: np.ndarray,
        old_pos: np.ndarray,
        row_a: np.ndarray,
        row_b: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The matched rows that are updates; per update, whether its date did not advance, and
        whether only its date changed."""
        same_rest = (row_a[matched] == old.row_a[old_pos]) & (row_b[matched] == old.row_b[old_pos])
        changed = ~same_rest
        advanced = np.zeros(len(matched), dtype=bool)
        if self.date is not None:
            new_date = batch.column(self.date).take(matched)
            old_date = old.keys[self.date].take(old_pos)
            distinct = pc.or_(
                pc.fill_null(pc.not_equal(new_date, old_date), False),
                pc.xor(pc.is_null(new_date), pc.is_null(old_date)),
            )
            advanced = _mask_of(pc.fill_null(pc.greater(new_date, old_date), False))
            changed |= _mask_of(distinct)
        without_bump = (~advanced)[changed] if self.date is not None else np.zeros(int(changed.sum()), dtype=bool)
        return matched[changed], without_bump, (same_rest & advanced)[changed]

    def finish(
        self, observed_at: datetime, text_rows: Callable[[np.ndarray], pa.Table]
    ) -> tuple[pa.Table, pa.Table | None, DiffStats]:
        """Duplicates, deletes, the delete guard; completes the snapshot. Returns changes, quarantine, stats."""
        accepted = _joined(self.accepted, bool)
        old_of_new = _joined(self.old_of_new, np.int64)
        rows_old = self.old.num_rows - len(self.old.excluded) if self.old is not None else 0
        repeated = np.unique(_joined(self.repeated, np.int64))  # old keys met twice: proven duplicates
        shared = np.flatnonzero(np.isin(old_of_new, repeated)) if len(repeated) else repeated
        key_schema = pa.schema([self.schema.field(k) for k in self.spec.primary_key])
        unmatched_keys = pa.Table.from_batches(self.unmatched_keys, schema=key_schema)
        unmatched_rows = _joined(self.unmatched_rows, np.int64)
        among = _duplicate_rows(unmatched_keys, _joined(self.unmatched_hash, np.uint64), np.arange(len(unmatched_rows)))
        duplicates = np.sort(np.concatenate([shared, unmatched_rows[among]]))
        newly = duplicates[accepted[duplicates]]  # duplicates with no earlier reason
        drop = (np.cumsum(accepted) - 1)[newly] if len(newly) else newly  # their places in the written snapshot
        accepted[newly] = False
        self.disputed.append((newly, np.full(len(newly), DUPLICATE_KEY, dtype=object)))

        carried = np.unique(old_of_new[~accepted & (old_of_new >= 0)])
        deleted = np.flatnonzero(~self.seen)
        if rows_old > 0 and not self.spec.allow_mass_delete and len(deleted) / rows_old > self.spec.max_delete_ratio:
            raise DeleteGuardError(len(deleted), rows_old, self.spec.max_delete_ratio)

        fetched = np.sort(np.concatenate([deleted, carried]))
        old_rows = self.old.rows(fetched) if self.old is not None else self.schema.empty_table()
        deleted_rows = old_rows.take(np.searchsorted(fetched, deleted))
        carried_rows = old_rows.take(np.searchsorted(fetched, carried))
        if self.old is not None and len(carried):
            old = self.old
            extra = _with_hashes(
                carried_rows, old.key_hash[carried], old.row_a[carried], old.row_b[carried], self.sink.schema
            )
        else:
            extra = self.sink.schema.empty_table()
        self.sink.finish(drop, extra)  # type: ignore[arg-type]

        inserts, _, _ = self.inserts.table(self.schema, newly)
        insert_count = inserts.num_rows if self.has_old or self.keep_first_inserts else self.first_inserts - len(newly)
        updates, without_bump, date_only = self.updates.table(self.schema, newly)
        changes = pa.concat_tables(
            [
                _with_cdc(inserts, "I", observed_at),
                _with_cdc(updates, "U", observed_at),
                _with_cdc(deleted_rows, "D", observed_at),
            ]
        )
        quarantine = None
        bad_rows = np.concatenate([rows for rows, _ in self.disputed])
        if len(bad_rows):
            order = np.argsort(bad_rows, kind="stable")
            bad_rows, reasons = bad_rows[order], np.concatenate([r for _, r in self.disputed])[order]
            quarantine = text_rows(bad_rows)
            quarantine = quarantine.append_column(QUARANTINE_REASON, pa.array(list(reasons), type=pa.string()))
            quarantine = quarantine.append_column(SOURCE_RECORD, pa.array(bad_rows + 2, type=pa.int64()))
        stats = DiffStats(
            rows_old=rows_old,
            rows_new=self.rows_new,
            inserts=insert_count,
            updates=updates.num_rows,
            deletes=len(deleted),
            quarantined=len(bad_rows),
            updates_without_date_bump=without_bump,
            date_only_updates=date_only,
            rows_snapshot=int(accepted.sum()) + len(carried),
            carried_forward=len(carried),
        )
        return changes, quarantine, stats


def _joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _diff(
    old: OldSnapshot | None,
    new: _NewInput,
    spec: TableSpec,
    observed_at: datetime,
    sink_for: Callable[[pa.Schema], _Sink],
    old_name: str,
    find_duplicates: bool = True,
) -> tuple[_Sink, pa.Table, pa.Table | None, DiffStats]:
    # In memory a first load's change set is returned as a table; files copy it from the snapshot file.
    keep_first_inserts = sink_for is _MemorySnapshot
    differ = _Differ(old, new.schema, spec, sink_for, old_name, keep_first_inserts, find_duplicates)
    try:
        # Pipeline: the reader decodes the next batches, a stage of two threads hashes, matches and
        # compares the few after batch n, this thread records batch n, and the writer encodes what came
        # before (the heavy parts release the GIL). The stage waits for the old side's index if needed.
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="batch-stage") as stage:
            ahead: collections.deque[Future[_Hashed]] = collections.deque()
            for batch, reasons in new.batches:
                ahead.append(stage.submit(differ.prepare, batch, reasons))
                if len(ahead) > HASHED_AHEAD:
                    differ.add(ahead.popleft().result())
            while ahead:
                differ.add(ahead.popleft().result())
        changes, quarantine, stats = differ.finish(_utc(observed_at), new.text_rows)
    except BaseException:
        differ.sink.abort()
        raise
    return differ.sink, changes, quarantine, stats


def _diff_in_memory(
    old: OldSnapshot | None, new: _NewInput, spec: TableSpec, observed_at: datetime, old_name: str
) -> DiffResult:
    sink, changes, quarantine, stats = _diff(old, new, spec, observed_at, _MemorySnapshot, old_name)
    assert isinstance(sink, _MemorySnapshot)
    return DiffResult(changes, sink.table, quarantine, stats, new.schema, new.schema_changes)


def diff_tables(
    old: pa.Table | None,
    new: pa.Table,
    spec: TableSpec,
    observed_at: datetime,
    *,
    new_name: str = "<new>",
    old_name: str = "<old>",
) -> DiffResult:
    """Diff ``new`` (text columns as read from a CSV, or typed columns) against ``old``.

    ``old`` is a previous accepted snapshot (``DiffResult.snapshot``, hashes reused) or plain data
    (accepted first, as a first snapshot would be: its bad rows are left out).
    """
    old_side = None
    if old is not None:
        if HASH_METADATA in (old.schema.metadata or {}):
            old_side = OldSnapshot.from_table(old, spec)
        else:
            first = _diff_in_memory(None, _input_from_table(old, spec, None, old_name), spec, observed_at, old_name)
            old_side = OldSnapshot.from_table(first.snapshot, spec)
    new_input = _input_from_table(new, spec, old_side.schema if old_side is not None else None, new_name)
    return _diff_in_memory(old_side, new_input, spec, observed_at, old_name)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------
def _read_parquet_data(path: Path) -> pa.Table:
    table = pq.read_table(path)
    return table.drop_columns([c for c in HASH_COLUMNS if c in table.column_names]).replace_schema_metadata(None)


def _diff_file(
    old: OldSnapshot | None,
    path: Path,
    spec: TableSpec,
    observed_at: datetime,
    sink_for: Callable[[pa.Schema], _Sink],
    names: tuple[str, str],
    find_duplicates: bool = True,
) -> tuple[_Sink, pa.Table, pa.Table | None, DiffStats, _NewInput]:
    """Diff a CSV (streamed; the exact path when the fast one stops) or Parquet file."""
    source, old_name = names
    previous = old.schema if old is not None else None
    if not is_parquet(path):
        try:
            streamed = _streamed_input(path, source, spec, previous)
            return (*_diff(old, streamed, spec, observed_at, sink_for, old_name, find_duplicates), streamed)
        except TypedReadFailed:
            pass
        table = read_csv_strings(path, source, spec.delimiter)
    else:
        table = _read_parquet_data(path)
    exact = _input_from_table(table, spec, previous, source)
    return (*_diff(old, exact, spec, observed_at, sink_for, old_name, find_duplicates), exact)


def _load_old(path: Path, spec: TableSpec, observed_at: datetime, name: str, work: Path) -> OldSnapshot:
    if is_parquet(path):
        stored = pq.read_schema(path)
        if HASH_METADATA in (stored.metadata or {}) and all(c in stored.names for c in HASH_COLUMNS):
            return OldSnapshot.from_parquet(path, spec, name)

    # Plain data (a CSV, a foreign Parquet): accepted as a first snapshot would be, its full rows into
    # a scratch file in ``work`` (memory stays bounded).
    def accept(find_duplicates: bool) -> tuple[_ScratchSnapshot, pa.Table | None]:
        scratch = functools.partial(_ScratchSnapshot, work / "old-snapshot.arrow", spec)
        sink, _, quarantine, _, _ = _diff_file(None, path, spec, observed_at, scratch, (name, name), find_duplicates)
        assert isinstance(sink, _ScratchSnapshot)
        return sink, quarantine

    # Keys occurring twice are left in the scratch file and set aside when the old side's hash table
    # is built: without duplicates, one hash table over the keys instead of two. A row quarantined for
    # a value still makes its key a duplicate, and it is not in the file: then the check runs here.
    sink, quarantine = accept(find_duplicates=False)
    if quarantine is not None and pc.any(pc.not_equal(quarantine[QUARANTINE_REASON], NULL_KEY)).as_py():
        del sink  # its keys and hashes, before the second acceptance holds its own
        sink, _ = accept(find_duplicates=True)
    pa.default_memory_pool().release_unused()  # give the acceptance's buffers back before the diff
    return sink.old_side()


def _first_load_copies(
    full_load: Path, changes: Path, inserted_at: datetime
) -> list[tuple[Path, Callable[[pa.Table], pa.Table]]]:
    """A first snapshot's data columns (no hashes) as the user-facing full load, and as its change set
    (every row inserted at ``inserted_at``)."""

    def data(rows: pa.Table) -> pa.Table:
        return rows.drop_columns(list(HASH_COLUMNS)).replace_schema_metadata(None)

    return [(full_load, data), (changes, lambda rows: _with_cdc(data(rows), "I", inserted_at))]


def _write(table: pa.Table, path: Path, written: list[Path]) -> Path:
    written.append(path)
    pq.write_table(table, path, **_parquet_options(table.schema, table))  # type: ignore[arg-type]
    return path


def diff_files(
    *,
    old: Path | None,
    new: Path,
    spec: TableSpec,
    observed_at: datetime,
    out_dir: Path,
    new_name: str | None = None,
    old_name: str | None = None,
) -> DiffOutcome:
    """Diff two local files (CSV or Parquet) and write the outputs into ``out_dir``.

    Outputs: ``changes.parquet``, ``snapshot.parquet``, ``full_load.parquet`` (first snapshot only),
    ``quarantine.parquet`` (when rows were rejected). On InputError or DeleteGuardError nothing is
    written.
    """
    started = time.perf_counter()
    new_label = new_name or str(new)
    old_label = old_name or (str(old) if old is not None else "<none>")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".work-") as work:
        old_side = _load_old(Path(old), spec, observed_at, old_label, Path(work)) if old is not None else None
        return _diff_into(old_side, Path(new), spec, observed_at, out_dir, (new_label, old_label), started)


def _diff_into(
    old_side: OldSnapshot | None,
    new: Path,
    spec: TableSpec,
    observed_at: datetime,
    out_dir: Path,
    names: tuple[str, str],
    started: float,
) -> DiffOutcome:
    snapshot_path = out_dir / "snapshot.parquet"
    changes_path = out_dir / "changes.parquet"
    written: list[Path] = [snapshot_path]
    # A first snapshot's data, without the hash columns, and its change set (every row inserted) are
    # written beside the snapshot; later ones' change set is small and written at the end.
    full_load_path = out_dir / "full_load.parquet" if old_side is None else None
    copies = _first_load_copies(full_load_path, changes_path, _utc(observed_at)) if full_load_path else []
    written += [path for path, _ in copies]
    try:
        sink, changes, quarantine, stats, new_input = _diff_file(
            old_side,
            Path(new),
            spec,
            observed_at,
            lambda schema: _ParquetSnapshot(snapshot_path, schema, spec, copies=copies),
            names,
        )
        assert isinstance(sink, _ParquetSnapshot)
        try:  # while the snapshot's writers complete it
            if old_side is not None:
                _write(changes, changes_path, written)
            quarantine_path = (
                _write(quarantine, out_dir / "quarantine.parquet", written) if quarantine is not None else None
            )
        finally:
            sink.close()
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return DiffOutcome(
        stats=stats,
        changes_path=changes_path,
        snapshot_path=snapshot_path,
        full_load_path=full_load_path,
        quarantine_path=quarantine_path,
        schema=new_input.schema,
        schema_changes=new_input.schema_changes,
        seconds=time.perf_counter() - started,
    )
