"""The diff on Spark, partition by partition: old and new rows are spread over partitions by the
engine's 64-bit key hash (every row of a key, old or new, lands in the same partition), and each
partition is diffed by the engine's own pipeline (:func:`snapcdc.engine.differ.run_diff`).

Rows travel between stages as Arrow IPC blobs (one per piece and bucket), so types Spark does not have
(``uint64`` key hashes, 16-byte row hashes, ``timestamp[us]`` without a zone) and the snapshot's hash
signature travel unchanged. Each row carries its place: ``__row`` (record number in the new file, from
0) or ``__pos`` (position in the old snapshot), so the driver can write the engine's order.

What needs the whole table is decided on the driver from the partitions' results: the delete guard
(on the summed counts; partitions run with the guard off), and the order of every output. Duplicated
keys need no global step: all rows of a key are in one partition, where the engine finds them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator
from datetime import datetime

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from snapcdc.engine import hashing
from snapcdc.engine.differ import run_diff
from snapcdc.engine.new_side import NewBatch, NewInput
from snapcdc.engine.old_side import OldSnapshot, conform_table
from snapcdc.engine.sinks import MemorySnapshot
from snapcdc.engine.spec import CDC_OPERATION, HASH_COLUMNS, QUARANTINE_REASON, SOURCE_RECORD, InputError, TableSpec

ROW, POS, KEY, REASON, ORDER, PIECE = "__row", "__pos", "__kh", "__reason", "__order", "__piece"
NEW_SIDE, OLD_SIDE = 1, 0
# The engine's order, as one sortable number: a group, then the row's place in its file.
_SECOND, _THIRD = 1 << 61, 1 << 62
BATCH_ROWS = 128 * 1024


BLOB_BYTES = 8 << 20  # rows per blob kept to about this size: Spark moves each blob as one value


def chunks(table: pa.Table) -> Iterator[pa.Table]:
    """``table`` in slices of about BLOB_BYTES (at least one, possibly empty)."""
    rows = max(1, int(BLOB_BYTES * table.num_rows / max(table.nbytes, 1)))
    yield table.slice(0, rows)
    for start in range(rows, table.num_rows, rows):
        yield table.slice(start, rows)


def to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def _by_bucket(table: pa.Table, key_hash: np.ndarray, buckets: int) -> Iterator[tuple[int, bytes]]:
    bucket = (key_hash % np.uint64(buckets)).astype(np.int64)
    for value in np.unique(bucket):
        for part in chunks(table.filter(pa.array(bucket == value))):
            yield int(value), to_ipc(part)


def new_blobs(
    table: pa.Table, reasons: np.ndarray | None, piece: int, spec: TableSpec, buckets: int
) -> Iterator[tuple[int, bytes]]:
    """A typed piece of the new side, with its piece and record numbers in it (the driver knows where
    each piece starts only once every piece is read) and quarantine reasons, per bucket."""
    key_hash = hashing.key_hash(table, spec.primary_key)
    count = table.num_rows
    table = table.append_column(PIECE, pa.array(np.full(count, piece, dtype=np.int32)))
    table = table.append_column(ROW, pa.array(np.arange(count, dtype=np.int64)))
    table = table.append_column(KEY, pa.array(key_hash, pa.uint64()))
    why = pa.array(list(reasons), pa.string()) if reasons is not None else pa.nulls(count, pa.string())
    yield from _by_bucket(table.append_column(REASON, why), key_hash, buckets)


def old_blobs(
    table: pa.Table, first_pos: int, schema: pa.Schema, spec: TableSpec, buckets: int, name: str
) -> Iterator[tuple[int, bytes]]:
    """A piece of the old snapshot (as stored, hash columns included), bucketed by the key hash of
    its keys in the new schema's types (as the new side's keys are hashed)."""
    key_schema = pa.schema([schema.field(k) for k in spec.primary_key])
    key_hash = hashing.key_hash(conform_table(table.select(list(spec.primary_key)), key_schema, name), spec.primary_key)
    table = table.append_column(POS, pa.array(np.arange(first_pos, first_pos + table.num_rows, dtype=np.int64)))
    yield from _by_bucket(table.append_column(KEY, pa.array(key_hash, pa.uint64())), key_hash, buckets)


@dataclasses.dataclass(frozen=True)
class Context:
    """What every diff task needs: the table's rules and the two sides' schemas."""

    spec: TableSpec
    schema: pa.Schema  # the new side's data schema
    old_schema: pa.Schema | None  # the old snapshot as stored (hash columns, signature); None: first load
    observed_at: datetime
    old_name: str
    starts: tuple[int, ...]  # the first record number of each piece of the new side


def _concat(parts: list[pa.Table], empty: pa.Schema, order: str) -> pa.Table:
    if not parts:
        return empty.empty_table()
    table = pa.concat_tables(parts)
    return table.take(pc.sort_indices(table, [(order, "ascending")]))


def _numbered(table: pa.Table, starts: tuple[int, ...]) -> pa.Table:
    """Record numbers in the piece to record numbers in the file."""
    first = np.asarray(starts, dtype=np.int64)[table[PIECE].to_numpy()]
    return table.set_column(table.column_names.index(ROW), ROW, pa.array(table[ROW].to_numpy() + first))


def diff_partition(side: Iterable[int], payload: Iterable[bytes], context: Context) -> list[tuple[str, bytes]]:
    """The engine's diff of one partition's rows; what it made, each row with its place (``__order``)."""
    news: list[pa.Table] = []
    olds: list[pa.Table] = []
    for which, data in zip(side, payload, strict=True):
        (news if which == NEW_SIDE else olds).append(from_ipc(data))
    if not news and not olds:
        return []
    spec = dataclasses.replace(context.spec, allow_mass_delete=True)  # the driver guards the whole table
    extra = [pa.field(PIECE, pa.int32()), pa.field(ROW, pa.int64()), pa.field(KEY, pa.uint64())]
    new_schema = pa.schema([*context.schema, *extra, pa.field(REASON, pa.string())])
    news = [_numbered(table, context.starts) for table in news]
    new = _concat(news, new_schema, ROW)
    old_side, old = None, None
    if context.old_schema is not None:
        stored = pa.schema([*context.old_schema, pa.field(POS, pa.int64()), pa.field(KEY, pa.uint64())])
        old = _concat(olds, stored, POS)
        old_side = OldSnapshot.from_table(
            old.drop_columns([POS, KEY]).replace_schema_metadata(context.old_schema.metadata), spec
        )
    data = new.select(context.schema.names)
    reasons = new[REASON].to_numpy(zero_copy_only=False) if new[REASON].null_count < new.num_rows else None

    def batches() -> Iterator[NewBatch]:
        at = 0
        for batch in data.to_batches(max_chunksize=BATCH_ROWS):
            part = reasons[at : at + batch.num_rows] if reasons is not None else None
            at += batch.num_rows
            yield NewBatch(batch, part)

    new_input = NewInput(context.schema, batches(), [], lambda rows: pa.table({"__local": pa.array(rows, pa.int64())}))
    try:
        diffed = run_diff(
            old_side, new_input, spec, context.observed_at, MemorySnapshot, context.old_name, keep_first_inserts=True
        )
    except InputError as error:
        return [("error", json.dumps({"file": error.file, "line": error.line, "problem": error.problem}).encode())]
    rows = new[ROW].to_numpy()
    out = [("stats", json.dumps(diffed.stats.as_dict()).encode())]
    bad = np.zeros(0, dtype=np.int64)
    if diffed.quarantine is not None:
        bad = diffed.quarantine["__local"].to_numpy()
        quarantine = pa.table({ROW: pa.array(rows[bad]), QUARANTINE_REASON: diffed.quarantine[QUARANTINE_REASON]})
        out.append(("quarantine", to_ipc(quarantine)))
    accepted = np.setdiff1d(np.arange(new.num_rows), bad)
    new_place = _places(new[KEY].to_numpy()[accepted], rows[accepted])
    old_place = _places(old[KEY].to_numpy(), old[POS].to_numpy()) if old is not None else None

    snapshot = diffed.sink.table
    carried = snapshot.slice(len(accepted))
    order = rows[accepted]
    if carried.num_rows:
        assert old_place is not None
        order = np.concatenate([order, _THIRD + _place_of(old_place, carried, context)])
    snapshot = snapshot.append_column(ORDER, pa.array(order, pa.int64()))
    out += [("snapshot", to_ipc(part)) for part in chunks(snapshot)]

    changes = diffed.changes
    operation = changes[CDC_OPERATION].to_numpy(zero_copy_only=False)
    order = np.zeros(changes.num_rows, dtype=np.int64)
    for op, group in (("I", 0), ("U", _SECOND)):
        chosen = operation == op
        if chosen.any():
            order[chosen] = group + _place_of(new_place, changes.filter(pa.array(chosen)), context)
    deleted = operation == "D"
    if deleted.any():
        assert old_place is not None
        order[deleted] = _THIRD + _place_of(old_place, changes.filter(pa.array(deleted)), context)
    changes = changes.append_column(ORDER, pa.array(order, pa.int64()))
    out += [("changes", to_ipc(part)) for part in chunks(changes)]
    return out


def _places(key_hash: np.ndarray, places: np.ndarray) -> tuple[pd.Index, np.ndarray]:
    return pd.Index(key_hash), places


def _place_of(index: tuple[pd.Index, np.ndarray], rows: pa.Table, context: Context) -> np.ndarray:
    """Each row's place, found by its key hash (keys are unique among accepted and old rows)."""
    lookup, places = index
    key_hash = hashing.key_hash(rows.select(list(context.spec.primary_key)), context.spec.primary_key)
    if lookup.is_unique:
        at = lookup.get_indexer(key_hash)
    else:  # distinct keys sharing a 64-bit hash (~n**2 * 2**-65): their rows take the first one's place
        at = np.asarray([_first(lookup, h) for h in key_hash], dtype=np.int64)
    placed: np.ndarray = places[at]
    return placed


def _first(lookup: pd.Index, value: np.uint64) -> int:
    found = np.flatnonzero(lookup.to_numpy() == value)
    return int(found[0]) if len(found) else 0


def data_columns(table: pa.Table) -> list[str]:
    return [c for c in table.column_names if c not in (*HASH_COLUMNS, ORDER)]


__all__ = ["SOURCE_RECORD", "Context", "diff_partition", "from_ipc", "new_blobs", "old_blobs", "to_ipc"]
