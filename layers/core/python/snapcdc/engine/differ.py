"""The batch pipeline that diffs the new side against the old side, and the change set it makes.

Each batch is hashed (vectorized, :mod:`snapcdc.engine.hashing`), matched to the old side on the key
hash, every matched pair verified on the real key values (a collision falls back to an exact join),
and its accepted rows streamed to the sink. Only inserted and updated rows are kept in memory.

A matched row is unchanged when both 64-bit lanes of the row hash are equal and the date field is
equal. Trusting a 128-bit hash is the design choice that lets the old side stay on disk: verifying
values would mean reading every old row. Two independent, well-mixed 64-bit lanes make an accidental
collision among n rows about n * 2**-128 likely (5M rows: ~1e-32); the data is exported tables, not an
adversary crafting collisions.

Bad rows (null/empty key, duplicated key, a value not fitting a configured type) are quarantined;
their keys produce no event and an existing old row is carried forward into the new snapshot.
Duplicates are known only at the end: when there are any, the sink drops their rows once.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from types import TracebackType
from typing import Generic, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from snapcdc.engine import arrow_numpy, hashing
from snapcdc.engine.cdc_columns import utc, with_cdc
from snapcdc.engine.hash_columns import hash_signature, snapshot_schema, table_with_hashes
from snapcdc.engine.keys import duplicate_rows, mask_of, null_key_mask
from snapcdc.engine.new_side import NewBatch, NewInput
from snapcdc.engine.old_side import OldIndex, OldSnapshot
from snapcdc.engine.sinks import SnapshotSink
from snapcdc.engine.spec import (
    DUPLICATE_KEY,
    NULL_KEY,
    QUARANTINE_REASON,
    SOURCE_RECORD,
    DeleteGuardError,
    DiffStats,
    TableSpec,
)

HASHED_AHEAD = 4  # batches hashed ahead of matching (each ~10-15 MB)

S = TypeVar("S", bound=SnapshotSink)


@dataclass(frozen=True)
class Diffed(Generic[S]):
    """What a diff made: the sink holding the new snapshot, the change set, the quarantined rows."""

    sink: S
    changes: pa.Table
    quarantine: pa.Table | None
    stats: DiffStats
    schema: pa.Schema  # the new side's data schema
    schema_changes: list[dict[str, str]]
    preimages: pa.Table | None = None  # the old rows of updated keys, in U-row order (with_preimages)


@dataclass(frozen=True)
class _PickedRows:
    table: pa.Table
    without_bump: int  # updates whose date field did not advance
    date_only: int  # updates where only the date field changed


@dataclass(frozen=True)
class _Updates:
    """The matched rows of a batch that are updates (positions in the batch), and per update whether
    its date field did not advance and whether only its date field changed."""

    rows: np.ndarray
    without_bump: np.ndarray
    date_only: np.ndarray


@dataclass(frozen=True)
class _Disputed:
    rows: np.ndarray  # row numbers in the new snapshot
    reasons: np.ndarray  # why each is quarantined


@dataclass(frozen=True)
class _Finished:
    changes: pa.Table
    quarantine: pa.Table | None
    stats: DiffStats
    preimages: pa.Table | None = None


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
            self.batches.append(batch.take(arrow_numpy.positions(positions)))
            self.rows.append(positions + offset)
            self.without_bump.append(without_bump)
            self.date_only.append(date_only)

    def table(self, schema: pa.Schema, dropped: np.ndarray) -> _PickedRows:
        """The kept rows minus ``dropped`` row numbers."""
        table = pa.Table.from_batches(self.batches, schema=schema)
        if not self.rows:
            return _PickedRows(table, 0, 0)
        keep = ~np.isin(np.concatenate(self.rows), dropped)
        without_bump, date_only = np.concatenate(self.without_bump)[keep], np.concatenate(self.date_only)[keep]
        if not keep.all():
            table = table.filter(arrow_numpy.arrow(keep))
        return _PickedRows(table, int(without_bump.sum()), int(date_only.sum()))


@dataclass(frozen=True)
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
    updates: _Updates


class Differ(Generic[S]):
    """Diffs the new snapshot batch by batch against the old side; see the module docstring. A context
    manager: it owns the thread pools of the run and shuts them down when it is left."""

    def __init__(
        self,
        old: OldSnapshot | None,
        schema: pa.Schema,
        spec: TableSpec,
        sink_for: Callable[[pa.Schema], S],
        old_name: str,
        keep_first_inserts: bool,
        find_duplicates: bool = True,
    ) -> None:
        self.spec = spec
        self.keep_first_inserts = keep_first_inserts
        self.find_duplicates = find_duplicates
        self.first_inserts = 0
        self.schema = schema
        self.signature = hash_signature(schema, spec)
        self.date = spec.date_field if spec.date_field in schema.names else None
        self.has_old = old is not None
        self.sink = sink_for(snapshot_schema(schema, self.signature.text))
        # Threads start only when a pool is first given work.
        # numpy and pyarrow release the GIL: hashing two columns at a time uses both Lambda vCPUs.
        self._hashing = ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1), thread_name_prefix="hashing")
        self._stage = ThreadPoolExecutor(max_workers=2, thread_name_prefix="batch-stage")
        self._old_side = ThreadPoolExecutor(max_workers=1, thread_name_prefix="old-side")
        self._old_index: Future[OldIndex] | None = None
        if old is not None:  # read and indexed in the background while the first batches are read and hashed
            self._old_index = self._old_side.submit(
                OldIndex, old, schema, spec, self.signature, old_name, self._hashing
            )
        self.rows_new = 0
        self.old_of_new: list[np.ndarray] = []  # per row: the old position with the same key, or -1
        self.accepted: list[np.ndarray] = []
        # Keyed rows with no old match, for finding duplicates among them (matched rows sharing an old
        # position are duplicates already proven on the real key values).
        self.unmatched_keys: list[pa.RecordBatch] = []
        self.unmatched_hash: list[np.ndarray] = []
        self.unmatched_rows: list[np.ndarray] = []
        self.disputed: list[_Disputed] = []
        self.inserts = _Picked()
        self.updates = _Picked()
        self.preimages = spec.with_preimages and old is not None
        self.updated_old: list[np.ndarray] = []  # with_preimages: per update, the old position of its key

    def __enter__(self) -> Differ[S]:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        """Shuts the pools down. After an error the old side is not waited for (as its result is not)."""
        self._stage.shutdown(wait=True, cancel_futures=True)
        self._old_side.shutdown(wait=error is None, cancel_futures=True)
        self._hashing.shutdown(wait=error is None)

    def run(self, batches: Iterable[NewBatch]) -> None:
        """Diffs every batch. Pipeline: the reader decodes the next batches, the stage's two threads
        hash, match and compare the few after batch n, this thread records batch n, and the sink's
        writer encodes what came before (the heavy parts release the GIL). The stage waits for the old
        side's index if needed."""
        ahead: collections.deque[Future[_Hashed]] = collections.deque()
        for new in batches:
            ahead.append(self._stage.submit(self.prepare, new.batch, new.reasons))
            if len(ahead) > HASHED_AHEAD:
                self.add(ahead.popleft().result())
        while ahead:
            self.add(ahead.popleft().result())
        self.sink.flush()

    @property
    def old(self) -> OldIndex | None:
        return self._old_index.result() if self._old_index is not None else None

    def prepare(self, batch: pa.RecordBatch, reasons: np.ndarray | None) -> _Hashed:
        """The part of a batch's work that reads no state of the run (hashing, matching, comparing):
        runs in a stage of its own, a few batches ahead of :meth:`add` and several at a time."""
        keys = batch.select(list(self.spec.primary_key))
        key_a = hashing.key_hash(batch, self.spec.primary_key, self._hashing)
        row_a, row_b = hashing.row_lanes(batch, self.signature.row_columns, self._hashing)
        null_key = null_key_mask(keys)
        if reasons is None:
            disputed = null_key
            reason = np.full(batch.num_rows, NULL_KEY, dtype=object) if null_key.any() else None
        else:
            reason = reasons.copy()
            reason[null_key & (reason == None)] = NULL_KEY  # noqa: E711 - elementwise test on an object array
            disputed = reason != None  # noqa: E711
        old_pos = np.full(batch.num_rows, -1, dtype=np.int64)
        updates = _Updates(np.zeros(0, dtype=np.int64), np.zeros(0, bool), np.zeros(0, bool))
        old = self.old
        if old is not None:
            keyed = np.flatnonzero(~null_key)
            old_pos[keyed] = old.match(keys, key_a, keyed)
            matched = np.flatnonzero(~disputed & (old_pos >= 0))
            updates = self._compare(old, batch, matched, old_pos[matched], row_a, row_b)
        return _Hashed(batch, keys, key_a, row_a, row_b, null_key, disputed, reason, old_pos, updates)

    def add(self, hashed: _Hashed) -> None:
        batch, keys, key_a, row_a, row_b = hashed.batch, hashed.keys, hashed.key_a, hashed.row_a, hashed.row_b
        null_key, disputed = hashed.null_key, hashed.disputed
        count, offset = batch.num_rows, self.rows_new
        self.rows_new += count
        accepted = ~disputed
        old_pos = hashed.old_pos

        inserted = np.flatnonzero(accepted & (old_pos < 0))
        none = np.zeros(len(inserted), dtype=bool)
        if self.has_old or self.keep_first_inserts:
            self.inserts.add(batch, inserted, offset, none, none)
        else:
            self.first_inserts += len(inserted)
        updates = hashed.updates
        self.updates.add(batch, updates.rows, offset, updates.without_bump, updates.date_only)
        if self.preimages and len(updates.rows):
            self.updated_old.append(old_pos[updates.rows])

        self.old_of_new.append(old_pos)
        self.accepted.append(accepted)
        unmatched = np.flatnonzero(~null_key & (old_pos < 0))
        if len(unmatched) and self.find_duplicates:
            # take() copies: a string column read from CSV may share its buffer with the whole block.
            self.unmatched_keys.append(keys.take(arrow_numpy.positions(unmatched)))
            self.unmatched_hash.append(key_a[unmatched])
            self.unmatched_rows.append(unmatched + offset)
        if hashed.reason is not None and disputed.any():
            bad = np.flatnonzero(disputed)
            self.disputed.append(_Disputed(bad + offset, hashed.reason[bad]))
            batch, key_a, row_a, row_b = (
                batch.filter(arrow_numpy.arrow(accepted)),
                key_a[accepted],
                row_a[accepted],
                row_b[accepted],
            )
        self.sink.write(batch, key_a, row_a, row_b)

    def _compare(
        self,
        old: OldIndex,
        batch: pa.RecordBatch,
        matched: np.ndarray,
        old_pos: np.ndarray,
        row_a: np.ndarray,
        row_b: np.ndarray,
    ) -> _Updates:
        """The matched rows that are updates."""
        same_rest = (row_a[matched] == old.row_a[old_pos]) & (row_b[matched] == old.row_b[old_pos])
        changed = ~same_rest
        advanced = np.zeros(len(matched), dtype=bool)
        if self.date is not None:
            new_date = batch.column(self.date).take(arrow_numpy.positions(matched))
            old_date = old.keys[self.date].take(arrow_numpy.positions(old_pos))
            changed |= mask_of(pc.not_equal(new_date, old_date))  # null compared: not distinct here
            changed |= mask_of(pc.xor(pc.is_null(new_date), pc.is_null(old_date)))
            advanced = mask_of(pc.greater(new_date, old_date))
        without_bump = (~advanced)[changed] if self.date is not None else np.zeros(int(changed.sum()), dtype=bool)
        return _Updates(matched[changed], without_bump, (same_rest & advanced)[changed])

    def finish(self, observed_at: datetime, text_rows: Callable[[np.ndarray], pa.Table]) -> _Finished:
        """Duplicates, deletes, the delete guard; completes the snapshot."""
        accepted = _joined(self.accepted, bool)
        old_of_new = _joined(self.old_of_new, np.int64)
        rows_old = self.old.num_rows - len(self.old.excluded) if self.old is not None else 0
        # Which old rows new rows met, marked once at the end (not batch by batch on this thread).
        met = old_of_new[old_of_new >= 0]
        seen = np.zeros(self.old.num_rows if self.old is not None else 0, dtype=bool)
        seen[met] = True
        repeated = _met_twice(met, seen)  # old keys met twice: proven duplicates
        if self.old is not None:
            seen[self.old.excluded] = True  # not part of the old side: never deleted
        del met
        shared = np.flatnonzero(np.isin(old_of_new, repeated)) if len(repeated) else repeated
        key_schema = pa.schema([self.schema.field(k) for k in self.spec.primary_key])
        unmatched_keys = pa.Table.from_batches(self.unmatched_keys, schema=key_schema)
        unmatched_rows = _joined(self.unmatched_rows, np.int64)
        among = duplicate_rows(unmatched_keys, _joined(self.unmatched_hash, np.uint64), np.arange(len(unmatched_rows)))
        duplicates = np.sort(np.concatenate([shared, unmatched_rows[among]]))
        newly = duplicates[accepted[duplicates]]  # duplicates with no earlier reason
        drop = (np.cumsum(accepted) - 1)[newly] if len(newly) else newly  # their places in the written snapshot
        accepted[newly] = False
        self.disputed.append(_Disputed(newly, np.full(len(newly), DUPLICATE_KEY, dtype=object)))

        carried = _distinct(old_of_new[~accepted & (old_of_new >= 0)])
        deleted = np.flatnonzero(~seen)
        if rows_old > 0 and not self.spec.allow_mass_delete and len(deleted) / rows_old > self.spec.max_delete_ratio:
            raise DeleteGuardError(len(deleted), rows_old, self.spec.max_delete_ratio)

        before = np.zeros(0, dtype=np.int64)  # the old positions of the updated keys, in U-row order
        if self.preimages and self.updated_old:
            kept = ~np.isin(np.concatenate(self.updates.rows), newly)
            before = np.concatenate(self.updated_old)[kept]
        # The pre-images are read with the deleted rows: the same row groups, one pass.
        fetched = _distinct(np.concatenate([deleted, carried, before]))
        old_rows = self.old.rows(fetched) if self.old is not None else arrow_numpy.empty_table(self.schema)
        deleted_rows = old_rows.take(arrow_numpy.positions(np.searchsorted(fetched, deleted)))
        carried_rows = old_rows.take(arrow_numpy.positions(np.searchsorted(fetched, carried)))
        preimages = old_rows.take(arrow_numpy.positions(np.searchsorted(fetched, before))) if self.preimages else None
        del old_rows
        if self.old is not None and len(carried):
            old = self.old
            extra = table_with_hashes(
                carried_rows, old.key_hash[carried], old.row_a[carried], old.row_b[carried], self.sink.schema
            )
        else:
            extra = arrow_numpy.empty_table(self.sink.schema)
        self.sink.finish(drop, extra)

        inserts = self.inserts.table(self.schema, newly).table
        insert_count = inserts.num_rows if self.has_old or self.keep_first_inserts else self.first_inserts - len(newly)
        updates = self.updates.table(self.schema, newly)
        changes = pa.concat_tables(
            [
                with_cdc(inserts, "I", observed_at),
                with_cdc(updates.table, "U", observed_at),
                with_cdc(deleted_rows, "D", observed_at),
            ]
        )
        quarantine = None
        bad_rows = np.concatenate([d.rows for d in self.disputed])
        if len(bad_rows):
            order = np.argsort(bad_rows, kind="stable")
            bad_rows, reasons = bad_rows[order], np.concatenate([d.reasons for d in self.disputed])[order]
            quarantine = text_rows(bad_rows)
            quarantine = quarantine.append_column(QUARANTINE_REASON, pa.array(list(reasons), type=pa.string()))
            quarantine = quarantine.append_column(SOURCE_RECORD, pa.array(bad_rows + 2, type=pa.int64()))
        stats = DiffStats(
            rows_old=rows_old,
            rows_new=self.rows_new,
            inserts=insert_count,
            updates=updates.table.num_rows,
            deletes=len(deleted),
            quarantined=len(bad_rows),
            updates_without_date_bump=updates.without_bump,
            date_only_updates=updates.date_only,
            rows_snapshot=int(accepted.sum()) + len(carried),
            carried_forward=len(carried),
        )
        return _Finished(changes, quarantine, stats, preimages)


def _joined(parts: list[np.ndarray], dtype: type) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _met_twice(met: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """The old positions that occur more than once in ``met`` (``seen`` marks those occurring at all).
    Usually none does (as many positions are seen as met); only when some do are they counted, which
    costs about twice the marking."""
    if int(np.count_nonzero(seen)) == len(met):
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(np.bincount(met, minlength=len(seen)) > 1)


def _distinct(values: np.ndarray) -> np.ndarray:
    """The distinct values, sorted (``np.unique`` without its import of numpy.ma on first use, ~30 ms)."""
    ordered = np.sort(values)
    if len(ordered) < 2:
        return ordered
    first = np.ones(len(ordered), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return ordered[first]


def run_diff(
    old: OldSnapshot | None,
    new: NewInput,
    spec: TableSpec,
    observed_at: datetime,
    sink_for: Callable[[pa.Schema], S],
    old_name: str,
    *,
    keep_first_inserts: bool,
    find_duplicates: bool = True,
) -> Diffed[S]:
    """Diffs ``new`` against ``old`` into the sink ``sink_for`` makes; on any error the sink is aborted.
    ``keep_first_inserts``: a first load's change set is returned as a table (in memory), instead of
    being copied from the snapshot by the sink (files)."""
    differ = Differ(old, new.schema, spec, sink_for, old_name, keep_first_inserts, find_duplicates)
    try:
        with differ:
            differ.run(new.batches)
            finished = differ.finish(utc(observed_at), new.text_rows)
    except BaseException:
        differ.sink.abort()
        raise
    return Diffed(
        differ.sink,
        finished.changes,
        finished.quarantine,
        finished.stats,
        new.schema,
        new.schema_changes,
        finished.preimages,
    )
