"""What the feeds share: the timestamp type, the data columns of a change set, and writing a feed's
Parquet file (whole, or a row group at a time from a file too big to hold)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from snapcdc.engine import arrow_numpy
from snapcdc.engine.parquet_output import parquet_options
from snapcdc.engine.sinks import SNAPSHOT_ROW_GROUP
from snapcdc.engine.spec import CDC_OPERATION, CDC_TIMESTAMP
from snapcdc.errors import SnapcdcError

TIMESTAMP = pa.timestamp("us", tz="UTC")
GROUP_ROWS = SNAPSHOT_ROW_GROUP * 2
PARQUET = "application/vnd.apache.parquet"


class FeedError(SnapcdcError, ValueError):
    """A feed cannot be built from its inputs (they disagree with each other).

    Not permanent: the inputs are objects of the bucket that a concurrent run may be rewriting, and a
    retry reads them again."""


def data_columns(changes: pa.Table) -> pa.Table:
    """The table's own columns of a change set (the operation and its timestamp dropped)."""
    return changes.drop_columns([c for c in (CDC_OPERATION, CDC_TIMESTAMP) if c in changes.column_names])


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
            rows = parquet.read_row_group(group) if group is not None else arrow_numpy.empty_table(parquet.schema_arrow)
            shaped = shape(rows.replace_schema_metadata(None))
            if writer is None:
                writer = pq.ParquetWriter(target, shaped.schema, **parquet_options(shaped.schema, shaped))
            writer.write_table(shaped, GROUP_ROWS)
    finally:
        if writer is not None:
            writer.close()
        parquet.close()
    return target
