"""The changelog feed: the Spark changelog contract (``_change_type`` insert / delete / update_preimage /
update_postimage, ``_commit_version`` long, ``_commit_timestamp``), each update as its pre-image row
followed by its post-image row (docs/design.md, "Change feeds")."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from snapcdc.cdc.feeds.files import TIMESTAMP, FeedError, data_columns, stream_rows, write_feed
from snapcdc.engine import arrow_numpy
from snapcdc.engine.old_side import conform_table
from snapcdc.engine.spec import CDC_OPERATION

CHANGE_TYPE = "_change_type"
COMMIT_VERSION = "_commit_version"
COMMIT_TIMESTAMP = "_commit_timestamp"
COLUMNS = (
    pa.field(CHANGE_TYPE, pa.string()),
    pa.field(COMMIT_VERSION, pa.int64()),
    pa.field(COMMIT_TIMESTAMP, TIMESTAMP),
)
INSERT, DELETE, PREIMAGE, POSTIMAGE = "insert", "delete", "update_preimage", "update_postimage"


def changelog_rows(changes: pa.Table, preimages: pa.Table | None, version: int, at: datetime) -> pa.Table:
    """A change set (``I``/``U``/``D`` rows) as changelog rows: inserts, deletes, then each update's
    pre-image followed by its post-image. ``preimages``: the old rows of the U rows, in their order."""
    data = data_columns(changes)
    operation = changes[CDC_OPERATION]
    inserts, deletes, post = (data.filter(pc.equal(operation, arrow_numpy.scalar(op, pa.string()))) for op in "IDU")
    if preimages is None:
        preimages = arrow_numpy.empty_table(data.schema) if post.num_rows == 0 else None
    if preimages is None or preimages.num_rows != post.num_rows:
        raise FeedError(f"{post.num_rows} updates but {0 if preimages is None else preimages.num_rows} pre-images")
    pre = conform_table(preimages.select(data.schema.names), data.schema, "pre-images")
    count = post.num_rows
    order = np.empty(2 * count, dtype=np.int64)
    order[0::2], order[1::2] = np.arange(count), np.arange(count) + count
    updates = pa.concat_tables([pre, post]).take(arrow_numpy.positions(order))
    kinds = arrow_numpy.texts([PREIMAGE, POSTIMAGE]).take(arrow_numpy.positions(np.tile([0, 1], count)))
    parts = [
        (inserts, arrow_numpy.repeated(INSERT, pa.string(), inserts.num_rows)),
        (deletes, arrow_numpy.repeated(DELETE, pa.string(), deletes.num_rows)),
        (updates, kinds),
    ]
    rows = pa.concat_tables([part.append_column(CHANGE_TYPE, kind) for part, kind in parts])
    return _with_commit(rows, version, at)


def _with_commit(rows: pa.Table, version: int, at: datetime) -> pa.Table:
    rows = rows.append_column(COMMIT_VERSION, arrow_numpy.repeated(version, pa.int64(), rows.num_rows))
    return rows.append_column(COMMIT_TIMESTAMP, arrow_numpy.repeated(at, TIMESTAMP, rows.num_rows))


def changelog_inserts(data: pa.Table, version: int, at: datetime) -> pa.Table:
    """Rows of a first snapshot (or a row group of it) as changelog inserts."""
    return _with_commit(
        data.append_column(CHANGE_TYPE, arrow_numpy.repeated(INSERT, pa.string(), data.num_rows)), version, at
    )


def write_first(full_load: Path, target: Path, version: int, at: datetime) -> Path:
    """A table's first snapshot (its full load) as changelog inserts, a row group at a time."""
    return stream_rows(full_load, target, lambda rows: changelog_inserts(rows, version, at))


def write_changes(changes: pa.Table, preimages: Path | None, version: int, at: datetime, target: Path) -> Path:
    """A change set and its pre-images file as changelog rows."""
    pre = pq.ParquetFile(preimages).read() if preimages is not None else None
    return write_feed(changelog_rows(changes, pre, version, at), target)
