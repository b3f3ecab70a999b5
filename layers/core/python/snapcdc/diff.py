"""The CDC engine: diff a new snapshot of a table against the previous accepted one.

Pure (pyarrow/numpy, no AWS). One core, :func:`diff_tables`, works on Arrow tables; :func:`diff_files`
is a thin wrapper that reads CSV/Parquet files and writes the Parquet outputs.

How it works (DESIGN.md "CDC semantics" is the contract):

* Every column is typed against the table's stable schema (:mod:`snapcdc.schema`).
* Each row gets a 64-bit key hash and a 128-bit row hash (over the non-key columns except the
  ``date_field``), computed vectorized with numpy straight over the Arrow buffers. The previous
  snapshot Parquet stores its hashes, so the old side costs one read of the key/hash columns.
* Keys are joined on the 64-bit key hash, and every matched pair is verified on the real key values:
  if any pair differs (a hash collision) the whole join is redone exactly on the key values.
* A matched row is unchanged when both 64-bit lanes of the row hash are equal and the date field is
  equal. Trusting a 128-bit hash is the design choice that lets the old side stay on disk: verifying
  values would mean reading every old row. Two independent, well-mixed 64-bit lanes make an
  accidental collision among n rows about n * 2**-128 likely (5M rows: ~1e-32); the data is
  exported tables, not an adversary crafting collisions.
* Bad rows (null/empty key, duplicated key, a value not fitting a configured type) are quarantined;
  their keys produce no event and an existing old row is carried forward into the new snapshot.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from snapcdc.csv_input import InputError, is_parquet, read_csv_strings
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
SNAPSHOT_ROW_GROUP = 128 * 1024  # small groups: fetching a few old rows decodes less

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
# Hashing: vectorized over Arrow buffers. Two independent 64-bit lanes (A, B) per value.
# ---------------------------------------------------------------------------------------------
_U64 = np.uint64
_SEED_A, _SEED_B = _U64(0x243F6A8885A308D3), _U64(0x13198A2E03707344)
_NULL_A, _NULL_B = _U64(0xA4093822299F31D0), _U64(0x082EFA98EC4E6C89)
_M_A, _M_B = _U64(0xC6A4A7935BD1E995), _U64(0x9E3779B97F4A7C15)
_HASH_THREADS = min(2, os.cpu_count() or 1)
_PIECE = 64  # long strings are hashed as independent 64-byte pieces, so the work stays vectorized
_WORD_MASKS = np.array([(1 << (8 * i)) - 1 for i in range(8)] + [(1 << 64) - 1], dtype=_U64)


def _fmix_a(h: np.ndarray) -> np.ndarray:  # MurmurHash3 finalizer (a bijection), in place
    h ^= h >> _U64(33)
    h *= _U64(0xFF51AFD7ED558CCD)
    h ^= h >> _U64(33)
    h *= _U64(0xC4CEB9FE1A85EC53)
    h ^= h >> _U64(33)
    return h


def _fmix_b(h: np.ndarray) -> np.ndarray:  # SplitMix64 finalizer (another bijection), in place
    h ^= h >> _U64(30)
    h *= _U64(0xBF58476D1CE4E5B9)
    h ^= h >> _U64(27)
    h *= _U64(0x94D049BB133111EB)
    h ^= h >> _U64(31)
    return h


def _piece_lanes(data: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """MurmurHash64A-style chains over the 8-byte words of each piece (<= 64 bytes), both lanes."""
    count = len(starts)
    width = max(8, int(-(-int(lengths.max()) // 8) * 8)) if count else 8
    padded = np.zeros(len(data) + width, dtype=np.uint8)
    padded[: len(data)] = data
    # One overlapping W-byte item per byte offset: gathering starts copies each piece into a row.
    windows = np.ndarray((len(data) + 1,), dtype=np.dtype((np.void, width)), buffer=padded, strides=(1,))
    words = windows[starts].view("<u8").reshape(count, width // 8)
    size = lengths.astype(_U64)
    lane_a = _SEED_A ^ (size * _M_A)
    lane_b = _SEED_B ^ (size * _M_B)
    for k in range(width // 8):
        remaining = lengths - 8 * k
        word = words[:, k]
        if (remaining < 8).any():
            word = word & _WORD_MASKS[np.clip(remaining, 0, 8)]
        step_a = word * _M_A
        step_a ^= step_a >> _U64(47)
        step_a *= _M_A
        step_a ^= lane_a
        step_a *= _M_A
        step_b = word * _M_B
        step_b ^= step_b >> _U64(31)
        step_b *= _M_B
        step_b ^= lane_b
        step_b *= _M_B
        if (remaining <= 0).any():  # shorter pieces are done: their chain must not depend on width
            active = remaining > 0
            step_a = np.where(active, step_a, lane_a)
            step_b = np.where(active, step_b, lane_b)
        lane_a, lane_b = step_a, step_b
    return lane_a, lane_b


def _string_lanes(array: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    if pa.types.is_string_view(array.type) or pa.types.is_binary_view(array.type):
        array = array.cast(pa.large_string())
    count = len(array)
    large = pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type)
    buffers = array.buffers()
    raw_offsets = np.frombuffer(buffers[1], dtype=np.int64 if large else np.int32)
    offsets: np.ndarray = raw_offsets[array.offset : array.offset + count + 1].astype(np.int64)
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    starts = offsets[:-1]
    lengths = offsets[1:] - starts
    if count and int(lengths.max()) > _PIECE:
        pieces = np.maximum(-(-lengths // _PIECE), 1)
        first = np.cumsum(pieces) - pieces
        owner = np.repeat(np.arange(count), pieces)
        piece_no = np.arange(len(owner)) - np.repeat(first, pieces)
        piece_a, piece_b = _piece_lanes(
            data, starts[owner] + piece_no * _PIECE, np.minimum(lengths[owner] - piece_no * _PIECE, _PIECE)
        )
        # A multi-piece string sums its pieces mixed with their position ("ab"+"cd" != "cd"+"ab");
        # a one-piece string keeps its plain chain, so its hash never depends on its neighbours.
        multi = pieces[owner] > 1
        salt = piece_no[multi].astype(_U64) * _M_B
        piece_a[multi] = _fmix_a(piece_a[multi] ^ salt)
        piece_b[multi] = _fmix_b(piece_b[multi] + salt)
        # Wrapping sums per string (cumsum differences work modulo 2**64).
        ends = first + pieces - 1
        lane_a, lane_b = (np.cumsum(p)[ends] for p in (piece_a, piece_b))
        before = first - 1
        has_before = before >= 0
        lane_a[has_before] -= np.cumsum(piece_a)[before[has_before]]
        lane_b[has_before] -= np.cumsum(piece_b)[before[has_before]]
    else:
        lane_a, lane_b = _piece_lanes(data, starts, lengths)
    size = lengths.astype(_U64)
    lane_a = _fmix_a(lane_a + size * _M_B)
    lane_b = _fmix_b(lane_b ^ size * _M_A)
    return lane_a, lane_b


def _fixed_words(column: pa.ChunkedArray) -> np.ndarray:
    """8 bytes per value, equal values giving equal words (-0.0 == 0.0, one NaN)."""
    kind = column.type
    if pa.types.is_floating(kind):
        values = pc.fill_null(pc.cast(column, pa.float64()), 0.0).to_numpy() + 0.0
        values[np.isnan(values)] = np.nan
        return values.view("<u8")
    if pa.types.is_date(kind):
        column = pc.cast(column, pa.int32())
    elif pa.types.is_timestamp(kind):
        column = pc.cast(column, pa.timestamp(kind.unit))  # drop a time zone before the int view
    ints = pc.fill_null(pc.cast(column, pa.int64()), 0).to_numpy()
    return np.ascontiguousarray(ints).view("<u8")


def _validity(column: pa.ChunkedArray) -> np.ndarray | None:
    if column.null_count == 0:
        return None
    return np.asarray(pc.is_valid(column).to_numpy(zero_copy_only=False), dtype=bool)


def column_lanes(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Two 64-bit hashes per value of one column; null hashes to a constant of its own."""
    if len(column) == 0:
        return np.zeros(0, _U64), np.zeros(0, _U64)
    kind = column.type
    if pa.types.is_null(kind):
        return np.full(len(column), _NULL_A), np.full(len(column), _NULL_B)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        parts = [_string_lanes(chunk) for chunk in column.chunks if len(chunk)]
        lane_a = np.concatenate([p[0] for p in parts])
        lane_b = np.concatenate([p[1] for p in parts])
    else:
        words = _fixed_words(column)
        lane_a = _fmix_a(words ^ _SEED_A)
        lane_b = _fmix_b(words + _SEED_B)
    valid = _validity(column)
    if valid is not None:
        lane_a[~valid] = _NULL_A
        lane_b[~valid] = _NULL_B
    return lane_a, lane_b


def row_lanes(table: pa.Table, columns: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Two 64-bit hashes per row over ``columns`` (in that order); each column hashed separately,
    so values are never concatenated and ("a", "bc") cannot meet ("ab", "c")."""
    lane_a = np.full(table.num_rows, _SEED_A)
    lane_b = np.full(table.num_rows, _SEED_B)
    # numpy and pyarrow release the GIL: hashing two columns at a time uses both Lambda vCPUs.
    with ThreadPoolExecutor(max_workers=_HASH_THREADS) as pool:
        for col_a, col_b in pool.map(lambda name: column_lanes(table[name]), columns):
            lane_a = _fmix_a(lane_a ^ col_a)
            lane_b = _fmix_b(lane_b + col_b)
    return lane_a, lane_b


def _row_hash_array(lane_a: np.ndarray, lane_b: np.ndarray) -> pa.Array:
    both = np.column_stack([lane_a, lane_b]).astype("<u8", copy=False)
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), len(lane_a), [None, pa.py_buffer(both.tobytes())])


def _row_hash_lanes(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if len(array) == 0:
        return np.zeros(0, _U64), np.zeros(0, _U64)
    words = np.frombuffer(array.buffers()[1], dtype="<u8")[2 * array.offset : 2 * (array.offset + len(array))]
    pairs = words.reshape(-1, 2)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


# ---------------------------------------------------------------------------------------------
# Typing the new snapshot against the stable schema
# ---------------------------------------------------------------------------------------------
@dataclass
class _Typed:
    table: pa.Table
    bad_rows: list[tuple[np.ndarray, str]]  # (row mask, reason) for values not fitting a configured type
    schema_changes: list[dict[str, str]]


def _type_new(raw: pa.Table, spec: TableSpec, previous: pa.Schema | None, new_name: str) -> _Typed:
    missing_keys = [k for k in spec.primary_key if k not in raw.column_names]
    if missing_keys:
        raise InputError(new_name, 1, f"primary key column(s) {', '.join(missing_keys)} missing from header")
    known = list(previous.names) if previous is not None else []
    order = known + [c for c in raw.column_names if c not in known]
    columns: list[pa.ChunkedArray] = []
    schema_fields: list[pa.Field] = []
    bad_rows: list[tuple[np.ndarray, str]] = []
    changes: list[dict[str, str]] = []
    for name in order:
        configured = spec.column_types.get(name)
        established = type_name(previous.field(name).type) if previous is not None and name in known else None
        if name not in raw.column_names:
            chosen = configured or established or "string"
            values = pa.chunked_array([pa.nulls(raw.num_rows, ARROW_TYPES[chosen])])
            changes.append({"column": name, "change": "removed", "type": chosen})
        elif configured is not None:
            chosen = configured
            parsed = parse(raw[name], configured)
            values = parsed.values
            if parsed.bad is not None:
                bad_rows.append((parsed.bad, f"column {name}: value does not fit configured type {configured}"))
        elif established is not None:
            chosen, parsed = widen(raw[name], established)
            values = parsed.values
        else:
            chosen = infer(raw[name])
            values = parse(raw[name], chosen).values
        if established is None and previous is not None and name in raw.column_names:
            changes.append({"column": name, "change": "added", "type": chosen})
        elif established is not None and chosen != established:
            kind = "widened" if configured is None else "retyped"
            changes.append({"column": name, "change": kind, "from": established, "to": chosen})
        columns.append(values)
        schema_fields.append(pa.field(name, ARROW_TYPES[chosen]))
    schema = pa.schema(schema_fields)
    return _Typed(pa.Table.from_arrays(columns, schema=schema), bad_rows, changes)


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
# The old side: keys, date and cached hashes in memory; full rows fetched only where needed
# ---------------------------------------------------------------------------------------------
@dataclass
class OldSnapshot:
    schema: pa.Schema  # data schema as stored
    keys: pa.Table  # key columns (+ date field when stored), one row per old row
    key_hash: np.ndarray | None  # lane A of the key hash, when cached
    row_hash: tuple[np.ndarray, np.ndarray] | None
    signature: str | None
    fetch: Callable[[np.ndarray | None], pa.Table]  # data rows at sorted positions (None: all rows)

    @property
    def num_rows(self) -> int:
        return self.keys.num_rows

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

        return cls(
            schema=data.schema,
            keys=data.select(wanted),
            key_hash=table[KEY_HASH].to_numpy() if cached else None,
            row_hash=_row_hash_lanes(table[ROW_HASH]) if cached else None,
            signature=metadata[HASH_METADATA].decode() if cached else None,
            fetch=fetch,
        )

    @classmethod
    def from_parquet(cls, path: Path, spec: TableSpec, name: str) -> OldSnapshot:
        """A snapshot Parquet written by this engine: reads keys and hashes only."""
        parquet = pq.ParquetFile(path)
        stored = parquet.schema_arrow
        data_names = [n for n in stored.names if n not in HASH_COLUMNS]
        missing = [k for k in spec.primary_key if k not in data_names]
        if missing:
            raise InputError(name, None, f"primary key column(s) {', '.join(missing)} not in the old snapshot")
        wanted = [*spec.primary_key, *([spec.date_field] if spec.date_field in data_names else [])]
        head = parquet.read(columns=[*wanted, *HASH_COLUMNS])
        group_starts = np.cumsum([0] + [parquet.metadata.row_group(g).num_rows for g in range(parquet.num_row_groups)])

        def fetch(positions: np.ndarray | None) -> pa.Table:
            if positions is None:
                return parquet.read(columns=data_names).replace_schema_metadata(None)
            pieces = []
            cuts = np.searchsorted(positions, group_starts)
            for group in range(parquet.num_row_groups):
                inside = positions[cuts[group] : cuts[group + 1]]
                if len(inside):
                    rows = parquet.read_row_group(group, columns=data_names)
                    pieces.append(rows.take(inside - group_starts[group]))
            schema = pa.schema([stored.field(n) for n in data_names])
            if not pieces:
                return schema.empty_table()
            return pa.concat_tables(pieces).replace_schema_metadata(None)

        return cls(
            schema=pa.schema([stored.field(n) for n in data_names]),
            keys=head.select(wanted),
            key_hash=head[KEY_HASH].to_numpy(),
            row_hash=_row_hash_lanes(head[ROW_HASH]),
            signature=(stored.metadata or {})[HASH_METADATA].decode(),
            fetch=fetch,
        )


@dataclass
class _OldHashed:
    keys: pa.Table  # conformed to the current schema
    key_hash: np.ndarray
    row_a: np.ndarray
    row_b: np.ndarray


def _hash_old(
    old: OldSnapshot, schema: pa.Schema, spec: TableSpec, signature: str, row_columns: list[str], name: str
) -> _OldHashed:
    key_and_date = [c for c in old.keys.column_names]
    if old.signature == signature and old.key_hash is not None and old.row_hash is not None:
        keys = _conform_table(old.keys, pa.schema([schema.field(c) for c in key_and_date]), name)
        return _OldHashed(keys, old.key_hash, old.row_hash[0], old.row_hash[1])
    full = _conform_table(old.fetch(None), schema, name)  # stale or missing hashes: recompute once
    date = [spec.date_field] if spec.date_field in schema.names else []
    key_a, _ = row_lanes(full, spec.primary_key)
    row_a, row_b = row_lanes(full, row_columns)
    return _OldHashed(full.select([*spec.primary_key, *date]), key_a, row_a, row_b)


# ---------------------------------------------------------------------------------------------
# Matching keys
# ---------------------------------------------------------------------------------------------
def _null_key_mask(keys: pa.Table) -> np.ndarray:
    mask = np.zeros(keys.num_rows, dtype=bool)
    for column in keys.columns:
        missing = pc.is_null(column)
        if pa.types.is_string(column.type):
            missing = pc.or_(missing, pc.fill_null(pc.equal(column, ""), False))
        mask |= np.asarray(missing.to_numpy(zero_copy_only=False), dtype=bool)
    return mask


def _duplicate_rows(keys: pa.Table, key_hash: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions (among ``rows``) whose key occurs more than once; exact on real key values."""
    if len(rows) < 2:
        return np.zeros(0, dtype=np.int64)
    hashes = pa.array(key_hash[rows])
    counts = pc.value_counts(hashes)
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if len(repeated) == 0:
        return np.zeros(0, dtype=np.int64)
    candidates = rows[np.asarray(pc.is_in(hashes, value_set=repeated).to_numpy(zero_copy_only=False), dtype=bool)]
    names = list(keys.column_names)
    table = keys.take(candidates).append_column("__row", pa.array(candidates))
    grouped = table.group_by(names).aggregate([("__row", "count")])
    joined = table.join(grouped, keys=names)
    repeated_rows = joined.filter(pc.greater(joined["__row_count"], 1))["__row"]
    return np.sort(repeated_rows.to_numpy())


def _match_old(new_keys: pa.Table, new_hash: np.ndarray, rows: np.ndarray, old: _OldHashed) -> np.ndarray:
    """For each of ``rows``, the old position with the same key, or -1."""
    if old.keys.num_rows == 0 or len(rows) == 0:
        return np.full(len(rows), -1, dtype=np.int64)
    found = pc.index_in(pa.array(new_hash[rows]), value_set=pa.array(old.key_hash))
    positions = found.fill_null(-1).to_numpy().astype(np.int64)
    hit = positions >= 0
    names = list(new_keys.column_names)
    for name in names:  # a hash collision must never pair different keys
        same = pc.equal(new_keys[name].take(rows[hit]), old.keys[name].take(positions[hit]))
        if not pc.all(pc.fill_null(same, False)).as_py():
            return _match_old_exact(new_keys, rows, old)
    return positions


def _match_old_exact(new_keys: pa.Table, rows: np.ndarray, old: _OldHashed) -> np.ndarray:
    names = list(new_keys.column_names)
    left = new_keys.take(rows).append_column("__new", pa.array(np.arange(len(rows))))
    right = old.keys.select(names).append_column("__old", pa.array(np.arange(old.keys.num_rows)))
    joined = left.join(right, keys=names, join_type="left outer")
    positions = np.full(len(rows), -1, dtype=np.int64)
    positions[joined["__new"].to_numpy()] = joined["__old"].fill_null(-1).to_numpy()
    return positions


# ---------------------------------------------------------------------------------------------
# The core
# ---------------------------------------------------------------------------------------------
def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _with_cdc(table: pa.Table, operation: str, observed_at: datetime) -> pa.Table:
    count = table.num_rows
    table = table.append_column(CDC_OPERATION, pa.repeat(pa.scalar(operation, pa.string()), count))
    return table.append_column(CDC_TIMESTAMP, pa.repeat(pa.scalar(observed_at, pa.timestamp("us", tz="UTC")), count))


def _mask_of(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=bool)


def _as_text_table(table: pa.Table) -> pa.Table:
    columns = [c if pa.types.is_string(c.type) else pc.cast(c, pa.string()) for c in table.columns]
    return pa.table(columns, names=table.column_names)


def _diff_core(
    old: OldSnapshot | None,
    raw: pa.Table,
    spec: TableSpec,
    observed_at: datetime,
    new_name: str,
    old_name: str,
) -> DiffResult:
    observed_at = _utc(observed_at)
    typed = _type_new(raw, spec, old.schema if old is not None else None, new_name)
    schema = typed.table.schema
    signature, row_columns = _hash_signature(schema, spec)
    date = spec.date_field if spec.date_field in schema.names else None
    new = typed.table
    count = new.num_rows

    keys = new.select(list(spec.primary_key))
    key_a, _ = row_lanes(new, spec.primary_key)
    row_a, row_b = row_lanes(new, row_columns)

    # Rows to quarantine, with the first reason that applies.
    reason = np.full(count, None, dtype=object)
    for mask, text in typed.bad_rows:
        reason[mask & (reason == None)] = text  # noqa: E711 - elementwise test on an object array
    null_key = _null_key_mask(keys)
    reason[null_key & (reason == None)] = NULL_KEY  # noqa: E711
    keyed_rows = np.flatnonzero(~null_key)
    duplicates = _duplicate_rows(keys, key_a, keyed_rows)
    reason[duplicates[reason[duplicates] == None]] = DUPLICATE_KEY  # noqa: E711
    disputed = reason != None  # noqa: E711
    accepted = ~disputed

    old_hashed = _hash_old(old, schema, spec, signature, row_columns, old_name) if old is not None else None
    rows_old = old_hashed.keys.num_rows if old_hashed is not None else 0
    old_of_new = np.full(count, -1, dtype=np.int64)
    if old_hashed is not None:
        old_of_new[keyed_rows] = _match_old(keys, key_a, keyed_rows, old_hashed)

    inserted = accepted & (old_of_new < 0)
    matched = np.flatnonzero(accepted & (old_of_new >= 0))
    carried = np.unique(old_of_new[disputed & (old_of_new >= 0)])
    seen_old = np.zeros(rows_old, dtype=bool)
    seen_old[old_of_new[old_of_new >= 0]] = True
    deleted = np.flatnonzero(~seen_old)

    if rows_old > 0 and not spec.allow_mass_delete and len(deleted) / rows_old > spec.max_delete_ratio:
        raise DeleteGuardError(len(deleted), rows_old, spec.max_delete_ratio)

    updated = np.zeros(0, dtype=np.int64)
    without_bump = date_only = 0
    if old_hashed is not None and len(matched):
        old_pos = old_of_new[matched]
        same_rest = (row_a[matched] == old_hashed.row_a[old_pos]) & (row_b[matched] == old_hashed.row_b[old_pos])
        changed = ~same_rest
        if date is not None:
            new_date = new[date].take(matched)
            old_date = old_hashed.keys[date].take(old_pos)
            distinct = pc.or_(
                pc.fill_null(pc.not_equal(new_date, old_date), False),
                pc.xor(pc.is_null(new_date), pc.is_null(old_date)),
            )
            advanced = _mask_of(pc.fill_null(pc.greater(new_date, old_date), False))
            changed |= _mask_of(distinct)
            without_bump = int((changed & ~advanced).sum())
            date_only = int((changed & same_rest & advanced).sum())
        updated = matched[changed]

    insert_rows = np.flatnonzero(inserted)
    old_rows = (
        old.fetch(np.sort(np.concatenate([deleted, carried])))
        if old is not None and (len(deleted) or len(carried))
        else None
    )
    if old_rows is not None:
        old_rows = _conform_table(old_rows, schema, old_name)
        fetched = np.sort(np.concatenate([deleted, carried]))
        deleted_rows = old_rows.take(np.searchsorted(fetched, deleted))
        carried_rows = old_rows.take(np.searchsorted(fetched, carried))
    else:
        deleted_rows = carried_rows = schema.empty_table()

    changes = pa.concat_tables(
        [
            _with_cdc(new.take(insert_rows), "I", observed_at),
            _with_cdc(new.take(updated), "U", observed_at),
            _with_cdc(deleted_rows, "D", observed_at),
        ]
    )

    accepted_rows = new if not disputed.any() else new.filter(pa.array(accepted))
    keep_a = key_a if not disputed.any() else key_a[accepted]
    keep_ra = row_a if not disputed.any() else row_a[accepted]
    keep_rb = row_b if not disputed.any() else row_b[accepted]
    if len(carried) and old_hashed is not None:
        accepted_rows = pa.concat_tables([accepted_rows, carried_rows])
        keep_a = np.concatenate([keep_a, old_hashed.key_hash[carried]])
        keep_ra = np.concatenate([keep_ra, old_hashed.row_a[carried]])
        keep_rb = np.concatenate([keep_rb, old_hashed.row_b[carried]])
    snapshot = accepted_rows.append_column(KEY_HASH, pa.array(keep_a, type=pa.uint64()))
    snapshot = snapshot.append_column(ROW_HASH, _row_hash_array(keep_ra, keep_rb))
    snapshot = snapshot.replace_schema_metadata({HASH_METADATA: signature.encode()})

    quarantine = None
    bad = np.flatnonzero(disputed)
    if len(bad):
        quarantine = _as_text_table(raw.take(bad))
        quarantine = quarantine.append_column(QUARANTINE_REASON, pa.array(list(reason[bad]), type=pa.string()))
        quarantine = quarantine.append_column(SOURCE_RECORD, pa.array(bad + 2, type=pa.int64()))

    stats = DiffStats(
        rows_old=rows_old,
        rows_new=count,
        inserts=len(insert_rows),
        updates=len(updated),
        deletes=len(deleted),
        quarantined=len(bad),
        updates_without_date_bump=without_bump,
        date_only_updates=date_only,
        rows_snapshot=snapshot.num_rows,
        carried_forward=len(carried),
    )
    return DiffResult(changes, snapshot, quarantine, stats, schema, typed.schema_changes)


def _accept_first(raw: pa.Table, spec: TableSpec, observed_at: datetime, name: str) -> OldSnapshot:
    """An old side given as plain data (CSV, foreign Parquet): accept it as a first snapshot would be."""
    result = _diff_core(None, raw, spec, observed_at, name, name)
    return OldSnapshot.from_table(result.snapshot, spec)


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
        cached = HASH_METADATA in (old.schema.metadata or {})
        old_side = OldSnapshot.from_table(old, spec) if cached else _accept_first(old, spec, observed_at, old_name)
    return _diff_core(old_side, new, spec, observed_at, new_name, old_name)


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------
def _read_data(path: Path, name: str, spec: TableSpec) -> pa.Table:
    if is_parquet(path):
        table = pq.read_table(path)
        return table.drop_columns([c for c in HASH_COLUMNS if c in table.column_names]).replace_schema_metadata(None)
    return read_csv_strings(path, name, spec.delimiter)


def _load_old(path: Path, spec: TableSpec, observed_at: datetime, name: str) -> OldSnapshot:
    if is_parquet(path):
        stored = pq.read_schema(path)
        if HASH_METADATA in (stored.metadata or {}) and all(c in stored.names for c in HASH_COLUMNS):
            return OldSnapshot.from_parquet(path, spec, name)
    return _accept_first(_read_data(path, name, spec), spec, observed_at, name)


def _write(table: pa.Table, path: Path, written: list[Path], row_group_size: int | None = None) -> Path:
    written.append(path)
    # Hashes are random bytes: dictionary encoding, compression and statistics only cost time there.
    hashes = [c for c in HASH_COLUMNS if c in table.column_names]
    pq.write_table(
        table,
        path,
        compression={c: ("none" if c in hashes else "snappy") for c in table.column_names},
        use_dictionary=[c for c in table.column_names if c not in hashes],
        write_statistics=[c for c in table.column_names if c not in hashes],
        row_group_size=row_group_size,
    )
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
    old_side = _load_old(Path(old), spec, observed_at, old_label) if old is not None else None
    raw = _read_data(Path(new), new_label, spec)
    result = _diff_core(old_side, raw, spec, observed_at, new_label, old_label)
    del raw

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    try:
        changes_path = _write(result.changes, out_dir / "changes.parquet", written)
        snapshot_path = _write(result.snapshot, out_dir / "snapshot.parquet", written, SNAPSHOT_ROW_GROUP)
        full_load_path = None
        if old is None:
            full_load_path = _write(result.snapshot_data, out_dir / "full_load.parquet", written)
        quarantine_path = None
        if result.quarantine is not None:
            quarantine_path = _write(result.quarantine, out_dir / "quarantine.parquet", written)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return DiffOutcome(
        stats=result.stats,
        changes_path=changes_path,
        snapshot_path=snapshot_path,
        full_load_path=full_load_path,
        quarantine_path=quarantine_path,
        schema=result.schema,
        schema_changes=result.schema_changes,
        seconds=time.perf_counter() - started,
    )
