"""Where the new snapshot goes, batch by batch: the :class:`SnapshotSink` protocol and its three
writers, memory (:func:`~snapcdc.engine.diff_tables`), a Parquet file (:func:`~snapcdc.engine.diff_files`)
and the scratch copy of an old side read from a file never accepted (a CSV)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.ipc

from snapcdc.engine import arrow_numpy
from snapcdc.engine.hash_columns import batch_with_hashes, data_only
from snapcdc.engine.hash_index import HashIndex
from snapcdc.engine.hashing import row_hash_lanes
from snapcdc.engine.old_side import Head, OldSnapshot, hash_lookup, one_chunk, take_from_groups
from snapcdc.engine.parquet_output import ParquetOutput
from snapcdc.engine.spec import HASH_METADATA, KEY_HASH, ROW_HASH, TableSpec

SNAPSHOT_ROW_GROUP = 128 * 1024  # rows gathered per snapshot row group (fetching a few old rows decodes less)
# The snapshot is the engine's own state, read back on every run: LZ4 decodes several times faster
# than Snappy (Athena engine 3 and Spark read it; the change files for users stay Snappy).
SNAPSHOT_CODEC = "lz4"


class SnapshotSink(Protocol):
    """Receives the accepted rows of the new snapshot, with their hashes, as the diff goes."""

    schema: pa.Schema  # data and hash columns, the hash signature in its metadata

    def write(self, batch: pa.RecordBatch, key_a: np.ndarray, row_a: np.ndarray, row_b: np.ndarray) -> None:
        """Appends the accepted rows of one batch and their key hash and row hash lanes."""

    def flush(self) -> None:
        """Every batch is in: what is still gathered may be encoded while the diff finishes."""

    def finish(self, drop: np.ndarray, extra: pa.Table) -> None:
        """Completes the snapshot: without the rows at places ``drop`` (duplicates found at the end),
        with the rows of ``extra`` (old rows carried forward, hash columns included)."""

    def abort(self) -> None:
        """Gives up: drops what was written (the error that made the diff stop is the one reported)."""


def _joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


@dataclass(frozen=True)
class FileCopy:
    """A file written beside the snapshot from its row groups: ``shape`` turns them into its rows."""

    path: Path
    shape: Callable[[pa.Table], pa.Table]


class MemorySnapshot:
    """The new snapshot as a table in memory (``table``, once finished)."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.batches: list[pa.RecordBatch] = []
        self.table = arrow_numpy.empty_table(schema)

    def write(self, batch: pa.RecordBatch, key_a: np.ndarray, row_a: np.ndarray, row_b: np.ndarray) -> None:
        self.batches.append(batch_with_hashes(batch, key_a, row_a, row_b, self.schema))

    def flush(self) -> None:
        pass  # nothing is encoded

    def finish(self, drop: np.ndarray, extra: pa.Table) -> None:
        table = pa.Table.from_batches(self.batches, schema=self.schema)
        if len(drop):
            keep = np.ones(table.num_rows, dtype=bool)
            keep[drop] = False
            table = table.filter(arrow_numpy.arrow(keep))
        self.table = pa.concat_tables([table, extra.cast(self.schema)])

    def abort(self) -> None:
        self.batches.clear()


class ParquetSnapshot:
    """The new snapshot as a Parquet file (``path``; None: not kept), gathered into row groups; a first
    snapshot's user-facing files (``copies``) are written beside it from the same row groups. The
    snapshot is the engine's own state, looked up by key and date: only those columns get statistics.
    With neither a snapshot nor a copy to write, the rows are not gathered at all."""

    def __init__(
        self,
        path: Path | None,
        schema: pa.Schema,
        spec: TableSpec,
        copies: Iterable[FileCopy] = (),
    ) -> None:
        self.schema = schema
        date = [spec.date_field] if spec.date_field is not None and spec.date_field in schema.names else []
        indexed = [*spec.primary_key, *date]
        group_rows = SNAPSHOT_ROW_GROUP * 2
        self.outputs = [ParquetOutput(copy.path, "snappy", copy.shape, schema, group_rows) for copy in copies]
        if path is not None:
            self.outputs.insert(0, ParquetOutput(path, SNAPSHOT_CODEC, lambda rows: rows, schema, group_rows, indexed))
        self.gathered: list[pa.RecordBatch] = []
        self.gathered_rows = 0

    def write(self, batch: pa.RecordBatch, key_a: np.ndarray, row_a: np.ndarray, row_b: np.ndarray) -> None:
        if not self.outputs:
            return
        self.gathered.append(batch_with_hashes(batch, key_a, row_a, row_b, self.schema))
        self.gathered_rows += batch.num_rows
        if self.gathered_rows >= SNAPSHOT_ROW_GROUP:
            self._submit()

    def flush(self) -> None:
        """The last rows gathered go to the writers now: they encode them while the deletes are read."""
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


class ScratchSnapshot:
    """An old side read from a file never accepted (a CSV), accepted once for this diff. What the diff
    reads of an old side (key hashes, keys, date, row hashes) stays in memory, and the other columns
    go to an uncompressed Arrow file, written with no encoding work, for reading back the few deleted
    rows."""

    def __init__(self, path: Path, spec: TableSpec, schema: pa.Schema) -> None:
        self.path = path
        self.schema = schema  # data and hash columns, the hash signature in its metadata
        self.data_schema = data_only(schema)
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
        self.lookup: Future[HashIndex | None] | None = None
        # Builds the old side's hash lookup (the slow part of indexing it) while the rest is gathered.
        self.lookup_builder = ThreadPoolExecutor(max_workers=1, thread_name_prefix="old-lookup")

    def write(self, batch: pa.RecordBatch, key_a: np.ndarray, row_a: np.ndarray, row_b: np.ndarray) -> None:
        self.writer.write_batch(batch.select(self.stored.names))
        self.batch_starts.append(self.batch_starts[-1] + batch.num_rows)
        self.key_hash_parts.append(key_a)
        self.row_a_parts.append(row_a)
        self.row_b_parts.append(row_b)
        self.head_parts.append(batch.select(self.wanted))

    def flush(self) -> None:
        pass  # each batch is written as it comes

    def finish(self, drop: np.ndarray, extra: pa.Table) -> None:
        for batch in extra.cast(self.schema).to_batches():
            self.write(batch, arrow_numpy.numbers(batch.column(KEY_HASH)), *row_hash_lanes(batch.column(ROW_HASH)))
        self.writer.close()
        self.key_hash = _joined(self.key_hash_parts, np.uint64)
        if len(drop):  # duplicates found at the end: their rows stay in the file, unread
            self.kept = np.delete(np.arange(len(self.key_hash)), drop)
            self.key_hash = np.delete(self.key_hash, drop)
        self.lookup = self.lookup_builder.submit(hash_lookup, self.key_hash)
        self.lookup_builder.shutdown(wait=False)  # its one task runs on; the old side waits for it
        self.row_a, self.row_b = _joined(self.row_a_parts, np.uint64), _joined(self.row_b_parts, np.uint64)
        heads = pa.Table.from_batches(self.head_parts, pa.schema([self.data_schema.field(n) for n in self.wanted]))
        self.key_hash_parts, self.row_a_parts, self.row_b_parts, self.head_parts = [], [], [], []
        self.keys = pa.table({name: one_chunk(heads[name]) for name in self.wanted})
        del heads
        if self.kept is not None:
            self.row_a, self.row_b = np.delete(self.row_a, drop), np.delete(self.row_b, drop)
            self.keys = self.keys.take(arrow_numpy.positions(self.kept))

    def abort(self) -> None:
        self.lookup_builder.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):  # the error that made us abort is the one to report
            self.writer.close()
        self.path.unlink(missing_ok=True)

    def old_side(self) -> OldSnapshot:
        """The accepted old side. Its key hashes and row hashes are handed over to the index that asks
        for them (or dropped when the index recomputes them from the full rows); the keys and date
        are shared with it, and the sink keeps the file for the other columns."""
        key_hash, head = [self.key_hash], [Head(self.keys, self.row_a, self.row_b)]
        del self.key_hash, self.row_a, self.row_b

        def fetch(positions: np.ndarray | None, columns: list[str] | None) -> pa.Table:
            if positions is None:  # stale hashes (the new file's schema differs): recomputed from these rows
                key_hash.clear()
                head.clear()
                snapshot.lookup = None
            return self.fetch(positions, columns)

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

    def fetch(self, positions: np.ndarray | None, columns: list[str] | None = None) -> pa.Table:
        """Rows at sorted ``positions`` of the old side (None: all), with ``columns`` (None: all): keys
        and date from memory, the other columns read from the file a batch at a time."""
        # The file's rows: the old side's, and those set aside as duplicates (``kept`` leaves them out).
        rows = positions if self.kept is None else self.kept if positions is None else self.kept[positions]
        with pa.OSFile(str(self.path)) as file:  # read, not mapped: mapped pages would count as memory
            reader = pa.ipc.open_file(file)
            if rows is None:
                stored = reader.read_all()
            else:
                starts = np.array(self.batch_starts)
                stored = take_from_groups(
                    rows, starts, self.stored, lambda groups: pa.Table.from_batches([reader.get_batch(groups[0])]), 1
                )
        names = self.data_schema.names if columns is None else columns
        head = self.keys.select([name for name in names if name in self.wanted])
        if positions is not None:
            head = head.take(arrow_numpy.positions(positions))
        schema = pa.schema([self.data_schema.field(name) for name in names])
        return pa.Table.from_arrays([(head if n in self.wanted else stored)[n] for n in names], schema=schema)
