"""The change feeds beyond ``cdc/``, built from what the CDC stage already holds (docs/design.md,
"Change feeds"): a changelog with update pre-images, an SCD type 2 history and the AWS DMS S3 layout.

Pure (pyarrow, local files): the CDC stage (:mod:`snapcdc.cdc.stage`) hands in the engine's change set,
its pre-images and the snapshot time, and uploads what these functions write.

- changelog: the Spark changelog contract (``_change_type`` insert / delete / update_preimage /
  update_postimage, ``_commit_version`` long, ``_commit_timestamp``), each update as its pre-image
  row followed by its post-image row;
- SCD2: per key, versions with ``valid_from`` / ``valid_to`` (null: current) / ``is_current``; the
  current versions in one file rewritten by each run (a row group at a time), the versions a run
  closes in one file of their own, written once;
- DMS: ``Op`` first (``I``/``U``/``D``), then the timestamp column as a string
  ``yyyy-MM-dd HH:mm:ss.SSSSSS``, then the data columns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from snapcdc.engine.old_side import conform_table
from snapcdc.engine.parquet_output import parquet_options
from snapcdc.engine.sinks import SNAPSHOT_ROW_GROUP
from snapcdc.engine.spec import CDC_OPERATION, CDC_TIMESTAMP

TIMESTAMP = pa.timestamp("us", tz="UTC")

CHANGE_TYPE = "_change_type"
COMMIT_VERSION = "_commit_version"
COMMIT_TIMESTAMP = "_commit_timestamp"
CHANGELOG_COLUMNS = (
    pa.field(CHANGE_TYPE, pa.string()),
    pa.field(COMMIT_VERSION, pa.int64()),
    pa.field(COMMIT_TIMESTAMP, TIMESTAMP),
)
INSERT, DELETE, PREIMAGE, POSTIMAGE = "insert", "delete", "update_preimage", "update_postimage"

VALID_FROM = "valid_from"
VALID_TO = "valid_to"
IS_CURRENT = "is_current"
SCD2_COLUMNS = (pa.field(VALID_FROM, TIMESTAMP), pa.field(VALID_TO, TIMESTAMP), pa.field(IS_CURRENT, pa.bool_()))
SCD2_METADATA = b"snapcdc.scd2"  # in the current file's footer: the snapshot its versions are as of

DMS_OP = "Op"
DMS_TIMESTAMP = "dms_timestamp"  # as DMS's TimestampColumnName would name it
DMS_COLUMNS = (pa.field(DMS_OP, pa.string()), pa.field(DMS_TIMESTAMP, pa.string()))
DMS_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # yyyy-MM-dd HH:mm:ss.SSSSSS

# The columns each feed adds to the table's data columns (leading: written before the data columns).
FEED_COLUMNS: dict[str, tuple[pa.Field, ...]] = {
    "changelog": CHANGELOG_COLUMNS,
    "scd2": SCD2_COLUMNS,
    "dms": DMS_COLUMNS,
}
LEADING = {"dms"}

GROUP_ROWS = SNAPSHOT_ROW_GROUP * 2


class FeedError(ValueError):
    """A feed cannot be built from its inputs (they disagree with each other)."""


def feed_schema(kind: str, data: pa.Schema) -> pa.Schema:
    extra = list(FEED_COLUMNS[kind])
    return pa.schema([*extra, *data] if kind in LEADING else [*data, *extra])


def _data(changes: pa.Table) -> pa.Table:
    return changes.drop_columns([c for c in (CDC_OPERATION, CDC_TIMESTAMP) if c in changes.column_names])


def _repeat(value: object, type_: pa.DataType, count: int) -> pa.Array:
    return pa.repeat(pa.scalar(value, type_), count)


# -- changelog ----------------------------------------------------------------------------------
def changelog_rows(changes: pa.Table, preimages: pa.Table | None, version: int, at: datetime) -> pa.Table:
    """A change set (``I``/``U``/``D`` rows) as changelog rows: inserts, deletes, then each update's
    pre-image followed by its post-image. ``preimages``: the old rows of the U rows, in their order."""
    data = _data(changes)
    operation = changes[CDC_OPERATION]
    inserts = data.filter(pc.equal(operation, "I"))
    deletes = data.filter(pc.equal(operation, "D"))
    post = data.filter(pc.equal(operation, "U"))
    if preimages is None:
        preimages = data.schema.empty_table() if post.num_rows == 0 else None
    if preimages is None or preimages.num_rows != post.num_rows:
        raise FeedError(f"{post.num_rows} updates but {0 if preimages is None else preimages.num_rows} pre-images")
    pre = conform_table(preimages.select(data.schema.names), data.schema, "pre-images")
    count = post.num_rows
    order = np.empty(2 * count, dtype=np.int64)
    order[0::2], order[1::2] = np.arange(count), np.arange(count) + count
    updates = pa.concat_tables([pre, post]).take(pa.array(order))
    kinds = np.empty(2 * count, dtype=object)
    kinds[0::2], kinds[1::2] = PREIMAGE, POSTIMAGE
    parts = [
        (inserts, pa.repeat(pa.scalar(INSERT), inserts.num_rows)),
        (deletes, pa.repeat(pa.scalar(DELETE), deletes.num_rows)),
        (updates, pa.array(kinds, type=pa.string())),
    ]
    rows = pa.concat_tables([part.append_column(CHANGE_TYPE, kind) for part, kind in parts])
    return _with_commit(rows, version, at)


def _with_commit(rows: pa.Table, version: int, at: datetime) -> pa.Table:
    rows = rows.append_column(COMMIT_VERSION, _repeat(version, pa.int64(), rows.num_rows))
    return rows.append_column(COMMIT_TIMESTAMP, _repeat(at, TIMESTAMP, rows.num_rows))


def changelog_inserts(data: pa.Table, version: int, at: datetime) -> pa.Table:
    """Rows of a first snapshot (or a row group of it) as changelog inserts."""
    return _with_commit(data.append_column(CHANGE_TYPE, pa.repeat(pa.scalar(INSERT), data.num_rows)), version, at)


# -- DMS -----------------------------------------------------------------------------------------
def dms_timestamp(at: datetime) -> str:
    return at.strftime(DMS_TIMESTAMP_FORMAT)


def dms_rows(data: pa.Table, operations: pa.Array | pa.ChunkedArray | str, at: datetime) -> pa.Table:
    """``Op`` first, the timestamp column, then the data columns."""
    count = data.num_rows
    op = pa.repeat(pa.scalar(operations), count) if isinstance(operations, str) else operations
    stamp = _repeat(dms_timestamp(at), pa.string(), count)
    return pa.Table.from_arrays([op, stamp, *_data(data).columns], schema=feed_schema("dms", _data(data).schema))


def dms_changes(changes: pa.Table, at: datetime) -> pa.Table:
    return dms_rows(changes, changes[CDC_OPERATION], at)


# -- writing -------------------------------------------------------------------------------------
def write_feed(table: pa.Table, path: Path, metadata: dict[bytes, bytes] | None = None) -> Path:
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    pq.write_table(table, path, row_group_size=GROUP_ROWS, **parquet_options(table.schema, table))
    return path


def stream_rows(source: Path, target: Path, shape: Callable[[pa.Table], pa.Table]) -> Path:
    """``source`` (a Parquet file) shaped a row group at a time into ``target``: memory stays one group."""
    parquet = pq.ParquetFile(source)
    writer: pq.ParquetWriter | None = None
    try:
        groups = range(parquet.num_row_groups) if parquet.num_row_groups else [None]
        for group in groups:
            rows = parquet.read_row_group(group) if group is not None else parquet.schema_arrow.empty_table()
            shaped = shape(rows.replace_schema_metadata(None))
            if writer is None:
                writer = pq.ParquetWriter(target, shaped.schema, **parquet_options(shaped.schema, shaped))
            writer.write_table(shaped, GROUP_ROWS)
    finally:
        if writer is not None:
            writer.close()
        parquet.close()
    return target


# -- SCD2 ----------------------------------------------------------------------------------------
def _null_safe_differ(left: pa.ChunkedArray | pa.Array, right: pa.ChunkedArray | pa.Array) -> pa.Array:
    return pc.or_(
        pc.fill_null(pc.not_equal(left, right), False),
        pc.xor(pc.is_null(left), pc.is_null(right)),
    )


def _versions(data: pa.Table, valid_from: pa.Array | pa.ChunkedArray, valid_to: datetime | None) -> pa.Table:
    count = data.num_rows
    return pa.Table.from_arrays(
        [
            *data.columns,
            valid_from,
            pa.nulls(count, TIMESTAMP) if valid_to is None else _repeat(valid_to, TIMESTAMP, count),
            _repeat(valid_to is None, pa.bool_(), count),
        ],
        schema=feed_schema("scd2", data.schema),
    )


def scd2_first(full_load: Path, target: Path, snap: str, at: datetime) -> Path:
    """A first snapshot's rows as the current versions, all opened at ``at``."""

    def shape(rows: pa.Table) -> pa.Table:
        data = _data(rows)
        return _versions(data, _repeat(at, TIMESTAMP, data.num_rows), None).replace_schema_metadata(
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
    full = feed_schema("scd2", schema)
    data = conform_table(_data(changes), schema, "change set")
    operation = changes[CDC_OPERATION]
    changed = data.filter(pc.is_in(operation, pa.array(["U", "D"]))).select(keys)
    changed = changed.append_column("__c", pa.array(np.arange(changed.num_rows), pa.int64()))
    parquet = pq.ParquetFile(current)
    writer = pq.ParquetWriter(target, full.with_metadata({SCD2_METADATA: snap.encode()}), **_options(full, parquet))
    touched = [full.empty_table()]
    try:
        for group in range(parquet.num_row_groups):
            rows = conform_table(parquet.read_row_group(group).replace_schema_metadata(None), full, str(current))
            hit = np.zeros(rows.num_rows, dtype=bool)
            if changed.num_rows:
                indexed = rows.select(keys).append_column("__r", pa.array(np.arange(rows.num_rows), pa.int64()))
                found = indexed.join(changed, keys=keys, join_type="inner", use_threads=False)
                hit[found["__r"].to_numpy()] = True
            writer.write_table(rows.filter(pa.array(~hit)) if hit.any() else rows, GROUP_ROWS)
            if hit.any():
                touched.append(rows.filter(pa.array(hit)))
        old = pa.concat_tables(touched)
        if old.num_rows != changed.num_rows:
            raise FeedError(f"{changed.num_rows} keys updated or deleted but {old.num_rows} current versions found")
        closed, opened = _apply(old, data, operation, keys, tracked, at)
        writer.write_table(opened, GROUP_ROWS)
    finally:
        writer.close()
        parquet.close()
    return closed


def _options(schema: pa.Schema, parquet: pq.ParquetFile) -> dict:
    sample = parquet.read_row_group(0) if parquet.num_row_groups else schema.empty_table()
    return dict(parquet_options(schema, conform_table(sample.replace_schema_metadata(None), schema, "current")))


def _apply(
    old: pa.Table,
    data: pa.Table,
    operation: pa.ChunkedArray,
    keys: list[str],
    tracked: Sequence[str] | None,
    at: datetime,
) -> tuple[pa.Table, pa.Table]:
    """(closed versions, versions current from now on that were not kept as they were)."""
    old_i = old.select(keys).append_column("__o", pa.array(np.arange(old.num_rows), pa.int64()))
    new_i = data.select(keys).append_column("__n", pa.array(np.arange(data.num_rows), pa.int64()))
    pairs = old_i.join(new_i, keys=keys, join_type="inner", use_threads=False).sort_by("__n")
    o, n = pairs["__o"].to_numpy(), pairs["__n"].to_numpy()
    ops = operation.to_numpy(zero_copy_only=False)
    is_update = ops[n] == "U"
    opens_version = ~is_update.copy()  # deletes close; for updates, see below
    if is_update.any():
        updated_old, updated_new = old.take(pa.array(o[is_update])), data.take(pa.array(n[is_update]))
        columns = list(tracked) if tracked is not None else [c for c in data.column_names if c not in keys]
        differs = np.zeros(int(is_update.sum()), dtype=bool)
        for name in columns:
            differs |= _null_safe_differ(updated_old[name], updated_new[name]).to_numpy(zero_copy_only=False)
        opens_version[is_update] = differs
    closes = o[opens_version]  # deletes and updates of tracked columns
    closed_old = old.take(pa.array(closes))
    closed = _versions(_data(closed_old.select(data.column_names)), closed_old[VALID_FROM], at)
    in_place = is_update & ~opens_version
    kept = _versions(data.take(pa.array(n[in_place])), old.take(pa.array(o[in_place]))[VALID_FROM], None)
    new_rows = np.sort(np.concatenate([np.flatnonzero(ops == "I"), n[is_update & opens_version]]))
    opened = _versions(data.take(pa.array(new_rows)), _repeat(at, TIMESTAMP, len(new_rows)), None)
    return closed, pa.concat_tables([kept, opened])


def as_of(history: pa.Table, at: datetime) -> pa.Table:
    """The versions valid at ``at``: ``valid_from <= at < valid_to`` (or current)."""
    moment = pa.scalar(at, TIMESTAMP)
    valid = pc.and_(
        pc.less_equal(history[VALID_FROM], moment),
        pc.or_kleene(pc.is_null(history[VALID_TO]), pc.greater(history[VALID_TO], moment)),
    )
    return history.filter(valid)
