"""The SCD type 2 history: per key, versions with ``valid_from`` / ``valid_to`` (null: current) /
``is_current``; the current versions in one file rewritten by each run (a row group at a time), the
versions a run closes in one file of their own, written once (docs/design.md, "Change feeds").

The pure steps (:func:`scd2_first`, :func:`scd2_step`) work on local files; :class:`Scd2History` owns
the table's state in the bucket: the current file, the snapshot it is as of (a mark in its footer),
advancing it by one snapshot and rebuilding it from the ledger. The CDC stage hands it its keys and
the snapshot's time.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from snapcdc.cdc.feeds.files import (
    GROUP_ROWS,
    PARQUET,
    TIMESTAMP,
    FeedError,
    data_columns,
    stream_rows,
    write_feed,
)
from snapcdc.engine import arrow_numpy
from snapcdc.engine.keys import equal_keys
from snapcdc.engine.old_side import conform_table
from snapcdc.engine.parquet_output import WriterOptions, parquet_options
from snapcdc.engine.spec import CDC_OPERATION, CDC_TIMESTAMP
from snapcdc.lake.ledger import accepted_records
from snapcdc.lake.output_files import download_output, read_output
from snapcdc.lake.snapshot import Snapshot
from snapcdc.lake.store import S3Store

VALID_FROM = "valid_from"
VALID_TO = "valid_to"
IS_CURRENT = "is_current"
COLUMNS = (pa.field(VALID_FROM, TIMESTAMP), pa.field(VALID_TO, TIMESTAMP), pa.field(IS_CURRENT, pa.bool_()))
SCD2_METADATA = b"snapcdc.scd2"  # in the current file's footer: the snapshot its versions are as of


def _history_schema(data: pa.Schema) -> pa.Schema:
    return pa.schema([*data, *COLUMNS])


def _null_safe_differ(left: pa.ChunkedArray | pa.Array, right: pa.ChunkedArray | pa.Array) -> pa.Array:
    return pc.or_(
        pc.fill_null(pc.not_equal(left, right), arrow_numpy.scalar(False, pa.bool_())),
        pc.xor(pc.is_null(left), pc.is_null(right)),
    )


def _versions(data: pa.Table, valid_from: pa.Array | pa.ChunkedArray, valid_to: datetime | None) -> pa.Table:
    count = data.num_rows
    return pa.Table.from_arrays(
        [
            *data.columns,
            valid_from,
            pa.nulls(count, TIMESTAMP) if valid_to is None else arrow_numpy.repeated(valid_to, TIMESTAMP, count),
            arrow_numpy.repeated(valid_to is None, pa.bool_(), count),
        ],
        schema=_history_schema(data.schema),
    )


def scd2_first(full_load: Path, target: Path, snap: str, at: datetime) -> Path:
    """A first snapshot's rows as the current versions, all opened at ``at``."""

    def shape(rows: pa.Table) -> pa.Table:
        data = data_columns(rows)
        return _versions(data, arrow_numpy.repeated(at, TIMESTAMP, data.num_rows), None).replace_schema_metadata(
            {SCD2_METADATA: snap.encode()}
        )

    return stream_rows(full_load, target, shape)


def scd2_step(
    current: Path,
    changes: pa.Table,
    schema: pa.Schema,
    primary_key: Sequence[str],
    tracked: Sequence[str] | None,
    snap: str,
    at: datetime,
    target: Path,
) -> pa.Table:
    """Applies one change set to the current versions in ``current``; writes the new current versions
    to ``target`` and returns the versions this snapshot closed (``valid_to`` = ``at``).

    The current file is read and written a row group at a time; only the versions of changed keys
    and the change set are held. ``tracked``: None, every column opens a new version on change; else
    only those columns do, and other changes update the current version in place.
    """
    keys = list(primary_key)
    schema = pa.schema([f for f in schema if f.name not in (CDC_OPERATION, CDC_TIMESTAMP)])
    full = _history_schema(schema)
    data = conform_table(data_columns(changes), schema, "change set")
    operation = changes[CDC_OPERATION]
    changed = data.filter(pc.is_in(operation, value_set=arrow_numpy.texts(["U", "D"]))).select(keys)
    parquet = pq.ParquetFile(current)
    writer = pq.ParquetWriter(target, full.with_metadata({SCD2_METADATA: snap.encode()}), **_options(full, parquet))
    touched = [arrow_numpy.empty_table(full)]
    try:
        for group in range(parquet.num_row_groups):
            rows = conform_table(parquet.read_row_group(group).replace_schema_metadata(None), full, str(current))
            hit = np.zeros(rows.num_rows, dtype=bool)
            if changed.num_rows:
                hit[equal_keys(rows, changed, keys).left] = True
            writer.write_table(rows.filter(arrow_numpy.arrow(~hit)) if hit.any() else rows, GROUP_ROWS)
            if hit.any():
                touched.append(rows.filter(arrow_numpy.arrow(hit)))
        old = pa.concat_tables(touched)
        if old.num_rows != changed.num_rows:
            raise FeedError(f"{changed.num_rows} keys updated or deleted but {old.num_rows} current versions found")
        closed, opened = _apply(old, data, operation, keys, tracked, at)
        writer.write_table(opened, GROUP_ROWS)
    finally:
        writer.close()
        parquet.close()
    return closed


def _options(schema: pa.Schema, parquet: pq.ParquetFile) -> WriterOptions:
    sample = parquet.read_row_group(0) if parquet.num_row_groups else arrow_numpy.empty_table(schema)
    return WriterOptions(
        **parquet_options(schema, conform_table(sample.replace_schema_metadata(None), schema, "current"))
    )


def _apply(
    old: pa.Table,
    data: pa.Table,
    operation: pa.ChunkedArray,
    keys: list[str],
    tracked: Sequence[str] | None,
    at: datetime,
) -> tuple[pa.Table, pa.Table]:
    """(closed versions, versions current from now on that were not kept as they were)."""
    pairs = equal_keys(data, old, keys)  # in the order of the change set's rows
    o, n = pairs.right, pairs.left

    def rows_of(kind: str) -> np.ndarray:
        return arrow_numpy.mask(pc.equal(operation, arrow_numpy.scalar(kind, pa.string())))

    is_update = rows_of("U")[n]
    opens_version = ~is_update  # deletes close; for updates, see below
    if is_update.any():
        updated_old, updated_new = (
            old.take(arrow_numpy.positions(o[is_update])),
            data.take(arrow_numpy.positions(n[is_update])),
        )
        columns = list(tracked) if tracked is not None else [c for c in data.column_names if c not in keys]
        differs = np.zeros(int(is_update.sum()), dtype=bool)
        for name in columns:
            differs |= arrow_numpy.mask(_null_safe_differ(updated_old[name], updated_new[name]))
        opens_version[is_update] = differs
    closes = o[opens_version]  # deletes and updates of tracked columns
    closed_old = old.take(arrow_numpy.positions(closes))
    closed = _versions(data_columns(closed_old.select(data.column_names)), closed_old[VALID_FROM], at)
    in_place = is_update & ~opens_version
    kept = _versions(
        data.take(arrow_numpy.positions(n[in_place])), old.take(arrow_numpy.positions(o[in_place]))[VALID_FROM], None
    )
    new_rows = np.sort(np.concatenate([np.flatnonzero(rows_of("I")), n[is_update & opens_version]]))
    opened = _versions(
        data.take(arrow_numpy.positions(new_rows)), arrow_numpy.repeated(at, TIMESTAMP, len(new_rows)), None
    )
    return closed, pa.concat_tables([kept, opened])


def as_of(history: pa.Table, at: datetime) -> pa.Table:
    """The versions valid at ``at``: ``valid_from <= at < valid_to`` (or current)."""
    moment = arrow_numpy.scalar(at, TIMESTAMP)
    valid = pc.and_(
        pc.less_equal(history[VALID_FROM], moment),
        pc.or_kleene(pc.is_null(history[VALID_TO]), pc.greater(history[VALID_TO], moment)),
    )
    return history.filter(valid)


@dataclass(frozen=True)
class Scd2Keys:
    """Where a table's history lives, as the stage's :class:`~snapcdc.lake.layout.Layout` names it."""

    current: str
    prefix: str
    full_load: str
    closed: Callable[[str], str]  # a snapshot id -> the key of the versions that snapshot closed
    owns: Callable[[str], bool]  # whether a key under ``prefix`` is one the history writes (current or closed)


@dataclass(frozen=True)
class Scd2History:
    """A table's SCD2 history in the bucket: its current versions file and the snapshot it is as of."""

    store: S3Store
    table: str
    keys: Scd2Keys
    primary_key: Sequence[str]
    tracked: Sequence[str] | None  # None: every column opens a new version on change

    def current(self, work: Path) -> tuple[Path | None, str | None]:
        """The current versions file, downloaded, and the snapshot it is as of (its footer's mark).

        One download, then the mark read from that copy: a concurrent run of the same snapshot may
        replace the object at any time, and a mark read apart from the file could belong to another
        version of it."""
        if not self.store.exists(self.keys.current):
            return None, None
        local = self.store.download_file(self.keys.current, work / "scd2-base.parquet")
        marker = (pq.read_schema(local).metadata or {}).get(SCD2_METADATA)
        return local, marker.decode() if marker else None

    def advance(
        self,
        snapshot: Snapshot,
        base: str | None,
        full_load: Path | None,
        changes: pa.Table | None,
        schema: pa.Schema,
        work: Path,
    ) -> None:
        """Rewrites the current versions file and writes the versions ``snapshot`` closed.

        ``base``: the snapshot diffed against (None: ``full_load`` is the table's first snapshot).
        Idempotent: the current file's footer names the snapshot it is as of. Already ``snapshot``: an
        interrupted attempt did it. Not the base: the history is rebuilt from the ledger first."""
        if base is None:
            assert full_load is not None
            path = scd2_first(full_load, work / "scd2-current.parquet", snapshot.id, snapshot.time)
            self.store.upload_file(path, self.keys.current, PARQUET)
            return
        assert changes is not None
        current, marker = self.current(work)
        if marker == snapshot.id:
            return
        if current is None or marker != base:
            rebuilt = self._rebuild_to(base, work)
            assert rebuilt is not None  # the base is an accepted snapshot
            current = rebuilt
        self._step(current, changes, schema, snapshot, work)

    def rebuild(self, work_root: Path) -> None:
        """The history rebuilt from the ledger (the end of a replay): its files deleted (only those it
        writes: the current file and the closed versions), then written again as the runs wrote them."""
        for key in list(self.store.list_keys(self.keys.prefix)):
            if self.keys.owns(key):
                self.store.delete(key)
        work = Path(tempfile.mkdtemp(prefix=f"{self.table}-scd2-", dir=work_root))
        try:
            self._rebuild_to(None, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _step(self, current: Path, changes: pa.Table, schema: pa.Schema, snapshot: Snapshot, work: Path) -> Path:
        target = work / f"scd2-{snapshot.id}.parquet"
        closed = scd2_step(current, changes, schema, self.primary_key, self.tracked, snapshot.id, snapshot.time, target)
        if closed.num_rows:  # the closed versions first: the current file says this snapshot is done
            path = write_feed(closed, work / "scd2-closed.parquet")
            self.store.upload_file(path, self.keys.closed(snapshot.id), PARQUET)
        self.store.upload_file(target, self.keys.current, PARQUET)
        current.unlink(missing_ok=True)
        return target

    def _rebuild_to(self, upto: str | None, work: Path) -> Path | None:
        """The history rebuilt from ``full-load/`` and the change files (each output's N files) of the
        accepted snapshots up to ``upto``; returns the local current versions file (None: no accepted snapshot)."""
        records = accepted_records(self.store, self.table, upto)
        if not records:
            return None
        first, *later = records
        full_keys = first.keys("full_load") or [self.keys.full_load]
        full_load = download_output(self.store, full_keys, work / "scd2-full.parquet", first).path
        opened = Snapshot.parse(first.snapshot)
        current = scd2_first(full_load, work / "scd2-first.parquet", opened.id, opened.time)
        self.store.upload_file(current, self.keys.current, PARQUET)
        for record in later:
            changes = read_output(self.store, record.keys("cdc"), record)  # its N files
            current = self._step(current, changes, changes.schema, Snapshot.parse(record.snapshot), work)
        return current
