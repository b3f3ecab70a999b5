"""The AWS DMS S3 layout: ``Op`` first (``I``/``U``/``D``), then the timestamp column as a string
``yyyy-MM-dd HH:mm:ss.SSSSSS``, then the data columns (docs/design.md, "Change feeds")."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa

from snapcdc.cdc.feeds.files import data_columns, stream_rows, write_feed
from snapcdc.engine.arrow_numpy import repeated
from snapcdc.engine.spec import CDC_OPERATION

DMS_OP = "Op"
DMS_TIMESTAMP = "dms_timestamp"  # as DMS's TimestampColumnName would name it
COLUMNS = (pa.field(DMS_OP, pa.string()), pa.field(DMS_TIMESTAMP, pa.string()))
DMS_TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S.%f"  # yyyy-MM-dd HH:mm:ss.SSSSSS


def dms_timestamp(at: datetime) -> str:
    return at.strftime(DMS_TIMESTAMP_FORMAT)


def dms_rows(data: pa.Table, operations: pa.Array | pa.ChunkedArray | str, at: datetime) -> pa.Table:
    """``Op`` first, the timestamp column, then the data columns."""
    count = data.num_rows
    op = repeated(operations, pa.string(), count) if isinstance(operations, str) else operations
    stamp = repeated(dms_timestamp(at), pa.string(), count)
    own = data_columns(data)
    return pa.Table.from_arrays([op, stamp, *own.columns], schema=pa.schema([*COLUMNS, *own.schema]))


def dms_changes(changes: pa.Table, at: datetime) -> pa.Table:
    return dms_rows(changes, changes[CDC_OPERATION], at)


def write_first(full_load: Path, target: Path, at: datetime) -> Path:
    """A table's first snapshot (its full load) as DMS ``I`` rows, a row group at a time."""
    return stream_rows(full_load, target, lambda rows: dms_rows(rows, "I", at))


def write_changes(changes: pa.Table, at: datetime, target: Path) -> Path:
    return write_feed(dms_changes(changes, at), target)
