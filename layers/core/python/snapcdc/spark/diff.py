"""The diff on Spark, bucket by bucket: old and new rows are spread over buckets by the engine's 64-bit
key hash (every row of a key, old or new, lands in the same bucket), each bucket is one partition, and
each partition is diffed by the engine's own pipeline (:func:`snapcdc.engine.parts.run_diff`) and
written, inside its task, by the engine's one output writer (:mod:`snapcdc.engine.writer`): the
snapshot, the change set (a first snapshot's full load), the quarantine and the pre-images of the
bucket, as part files named by the bucket (:class:`~snapcdc.spark.outputs.PartTarget`). The task hands
back only what the driver needs to commit: its counts and its files (location, rows, bytes).

Rows travel between stages as Arrow IPC blobs (one per piece and bucket), so types Spark does not have
(``uint64`` key hashes, 16-byte row hashes, ``timestamp[us]`` without a zone) and the snapshot's hash
signature travel unchanged. A new row carries its piece and its record number in the piece, so a
bucket diffs its rows in file order and its quarantine names their records and text as read.

A snapshot written this way is bucketed: its part ``b`` holds the keys of bucket ``b``. The next run
with as many buckets reads its old side part by part inside the diff tasks (no shuffle of the old
side); otherwise the old rows are shuffled to their buckets like the new ones.

What needs the whole table is decided on the driver from the tasks' counts: the delete guard (tasks
run with the guard off), before anything is committed. Duplicated keys need no global step: all rows
of a key are in one bucket, where the engine finds them.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from snapcdc.engine import writer
from snapcdc.engine.parts import (
    NewBatch,
    NewInput,
    OldSnapshot,
    OutputFiles,
    as_text_table,
    conform_table,
    finish_outputs,
    hashing,
    run_diff,
    snapshot_sink,
)
from snapcdc.engine.spec import SOURCE_RECORD, InputError, TableSpec
from snapcdc.spark import reader
from snapcdc.spark.outputs import PartTarget
from snapcdc.spark.sources import Source

ROW, POS, KEY, REASON, PIECE = "__row", "__pos", "__kh", "__reason", "__piece"
NEW_SIDE, OLD_SIDE, MARK = 1, 0, 2  # MARK: one empty row per bucket, so every bucket's task runs
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
    with pa.ipc.new_stream(sink, table.schema) as stream:
        stream.write_table(table)
    data: bytes = sink.getvalue().to_pybytes()
    return data


def from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def bucket_of(key_hash: np.ndarray, buckets: int) -> np.ndarray:
    return (key_hash % np.uint64(buckets)).astype(np.int64)


def _by_bucket(table: pa.Table, key_hash: np.ndarray, buckets: int) -> Iterator[tuple[int, bytes]]:
    bucket = bucket_of(key_hash, buckets)
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
    why = pa.array(list(reasons), pa.string()) if reasons is not None else pa.nulls(count, pa.string())
    yield from _by_bucket(table.append_column(REASON, why), key_hash, buckets)


def _old_key_hash(table: pa.Table, schema: pa.Schema, spec: TableSpec, name: str) -> np.ndarray:
    """The key hash of old rows, their keys in the new schema's types (as the new side's are hashed)."""
    key_schema = pa.schema([schema.field(k) for k in spec.primary_key])
    return hashing.key_hash(conform_table(table.select(list(spec.primary_key)), key_schema, name), spec.primary_key)


def old_blobs(
    table: pa.Table, first_pos: int, schema: pa.Schema, spec: TableSpec, buckets: int, name: str
) -> Iterator[tuple[int, bytes]]:
    """A piece of the old snapshot (as stored, hash columns included), bucketed by key hash."""
    key_hash = _old_key_hash(table, schema, spec, name)
    table = table.append_column(POS, pa.array(np.arange(first_pos, first_pos + table.num_rows, dtype=np.int64)))
    yield from _by_bucket(table, key_hash, buckets)


@dataclasses.dataclass(frozen=True)
class Context:
    """What every diff task needs: the table's rules, the two sides' schemas, where to write."""

    spec: TableSpec
    schema: pa.Schema  # the new side's data schema
    old_schema: pa.Schema | None  # the old snapshot as stored (hash columns, signature); None: first load
    observed_at: datetime
    old_name: str
    starts: tuple[int, ...]  # the first record number of each piece of the new side
    layout: reader.Layout  # the new input, to read a quarantined row's text as it was read
    target: PartTarget
    buckets: int
    old_parts: tuple[Source, ...] = ()  # a bucketed old side: part b is bucket b, read by its task


@dataclasses.dataclass(frozen=True)
class PartResult:
    """What one bucket's task hands back: its counts and files, or the input error that stopped it."""

    part: int
    stats: dict[str, int]
    files: dict[str, writer.WrittenFile]
    error: tuple[str, int | None, str] | None = None


def _concat(parts: list[pa.Table], empty: pa.Schema, order: np.ndarray | None = None) -> pa.Table:
    if not parts:
        return empty.empty_table()
    table = pa.concat_tables(parts)
    if order is None:
        order = table[POS].to_numpy()
    return table.take(pa.array(np.argsort(order, kind="stable")))


def _records(table: pa.Table, starts: tuple[int, ...]) -> np.ndarray:
    """Record numbers in the piece to record numbers in the file."""
    records: np.ndarray = np.asarray(starts, dtype=np.int64)[table[PIECE].to_numpy()] + table[ROW].to_numpy()
    return records


def _old_rows(part: int, olds: list[pa.Table], context: Context, stored: pa.Schema) -> pa.Table:
    """The bucket's old rows: shuffled to it, or its part of a bucketed snapshot read here."""
    if not context.old_parts:
        return _concat(olds, stored).drop_columns([POS])
    with context.old_parts[part].open() as handle:
        table = pq.read_table(handle)
    found = bucket_of(_old_key_hash(table, context.schema, context.spec, context.old_name), context.buckets)
    if len(found) and not (found == part).all():
        raise RuntimeError(
            f"{context.old_parts[part].location} holds keys of other buckets than {part}: not a bucketed snapshot"
        )
    return table


def _quarantined_text(context: Context, new: pa.Table) -> Any:
    """The engine's ``text_rows``: the rows (places in ``new``) as read, every column as text."""

    def text(local: np.ndarray) -> pa.Table:
        pieces, rows = new[PIECE].to_numpy()[local], new[ROW].to_numpy()[local]
        parts = []
        for piece in dict.fromkeys(pieces.tolist()):  # pieces in order of first appearance (file order)
            chosen = rows[pieces == piece]
            parts.append(as_text_table(reader.text_rows(context.layout, context.layout.pieces[piece]).take(chosen)))
        return pa.concat_tables(parts)

    return text


def diff_partition(part: int, side: Iterable[int], payload: Iterable[bytes], context: Context) -> PartResult:
    """The engine's diff of bucket ``part``, its files written and placed at their part locations."""
    news: list[pa.Table] = []
    olds: list[pa.Table] = []
    for which, data in zip(side, payload, strict=True):
        if which != MARK:
            (news if which == NEW_SIDE else olds).append(from_ipc(data))
    spec = dataclasses.replace(context.spec, allow_mass_delete=True)  # the driver guards the whole table
    extra = [pa.field(PIECE, pa.int32()), pa.field(ROW, pa.int64()), pa.field(REASON, pa.string())]
    new_schema = pa.schema([*context.schema, *extra])
    records = np.concatenate([_records(t, context.starts) for t in news]) if news else None
    new = _concat(news, new_schema, records)
    records = np.sort(records) if records is not None else np.zeros(0, dtype=np.int64)
    old_side = None
    if context.old_schema is not None:
        stored = pa.schema([*context.old_schema, pa.field(POS, pa.int64())])
        old = _old_rows(part, olds, context, stored)
        old_side = OldSnapshot.from_table(old.replace_schema_metadata(context.old_schema.metadata), spec)
    data = new.select(context.schema.names)
    reasons = new[REASON].to_numpy(zero_copy_only=False) if new[REASON].null_count < new.num_rows else None

    def batches() -> Iterator[NewBatch]:
        at = 0
        for batch in data.to_batches(max_chunksize=BATCH_ROWS):
            chosen = reasons[at : at + batch.num_rows] if reasons is not None else None
            at += batch.num_rows
            yield NewBatch(batch, chosen)

    new_input = NewInput(context.schema, batches(), [], _quarantined_text(context, new))
    scratch = Path(tempfile.mkdtemp(prefix=f"snapcdc-part-{part:05d}-"))
    try:
        files = OutputFiles(scratch, first=old_side is None)
        try:
            diffed = run_diff(
                old_side,
                new_input,
                spec,
                context.observed_at,
                snapshot_sink(files, spec, context.observed_at),
                context.old_name,
                keep_first_inserts=False,
            )
        except InputError as error:
            return PartResult(part, {}, {}, (error.file, error.line, error.problem))
        if diffed.quarantine is not None:  # the bucket's record numbers, as the file numbers them
            local = diffed.quarantine[SOURCE_RECORD].to_numpy() - 2
            at = diffed.quarantine.column_names.index(SOURCE_RECORD)
            quarantine = diffed.quarantine.set_column(at, SOURCE_RECORD, pa.array(records[local] + 2, pa.int64()))
            diffed = dataclasses.replace(diffed, quarantine=quarantine)
        written = finish_outputs(diffed, files)
        placed = {
            name: context.target.place(file, name, part)
            for name, file in written.items()
            if name in context.target.templates  # the outputs the target asks for
            and (file.rows or name == writer.SNAPSHOT)  # every bucket has its snapshot part, empty or not
        }
        return PartResult(part, diffed.stats.as_dict(), placed)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


__all__ = ["Context", "PartResult", "diff_partition", "from_ipc", "new_blobs", "old_blobs", "to_ipc"]
