"""The change feeds beyond ``cdc/``, built from what the CDC stage already holds (docs/design.md,
"Change feeds"): :mod:`.changelog` (with update pre-images), :mod:`.scd2` (an SCD type 2 history)
and :mod:`.dms` (the AWS DMS S3 layout); :mod:`.files` writes their Parquet files."""

from __future__ import annotations

import pyarrow as pa

from snapcdc.cdc.feeds.changelog import (
    CHANGE_TYPE,
    COMMIT_TIMESTAMP,
    COMMIT_VERSION,
    DELETE,
    INSERT,
    POSTIMAGE,
    PREIMAGE,
    changelog_inserts,
    changelog_rows,
)
from snapcdc.cdc.feeds.changelog import COLUMNS as CHANGELOG_COLUMNS
from snapcdc.cdc.feeds.dms import COLUMNS as DMS_COLUMNS
from snapcdc.cdc.feeds.dms import DMS_OP, DMS_TIMESTAMP, dms_changes, dms_rows, dms_timestamp
from snapcdc.cdc.feeds.files import TIMESTAMP, FeedError, stream_rows, write_feed
from snapcdc.cdc.feeds.scd2 import COLUMNS as SCD2_COLUMNS
from snapcdc.cdc.feeds.scd2 import IS_CURRENT, SCD2_METADATA, VALID_FROM, VALID_TO, as_of, scd2_first, scd2_step

# The columns each feed adds to the table's data columns (leading: written before the data columns).
FEED_COLUMNS: dict[str, tuple[pa.Field, ...]] = {
    "changelog": CHANGELOG_COLUMNS,
    "scd2": SCD2_COLUMNS,
    "dms": DMS_COLUMNS,
}
LEADING = {"dms"}


def feed_schema(kind: str, data: pa.Schema) -> pa.Schema:
    extra = list(FEED_COLUMNS[kind])
    return pa.schema([*extra, *data] if kind in LEADING else [*data, *extra])


__all__ = [
    "CHANGELOG_COLUMNS",
    "CHANGE_TYPE",
    "COMMIT_TIMESTAMP",
    "COMMIT_VERSION",
    "DELETE",
    "DMS_COLUMNS",
    "DMS_OP",
    "DMS_TIMESTAMP",
    "FEED_COLUMNS",
    "INSERT",
    "IS_CURRENT",
    "LEADING",
    "POSTIMAGE",
    "PREIMAGE",
    "SCD2_COLUMNS",
    "SCD2_METADATA",
    "TIMESTAMP",
    "VALID_FROM",
    "VALID_TO",
    "FeedError",
    "as_of",
    "changelog_inserts",
    "changelog_rows",
    "dms_changes",
    "dms_rows",
    "dms_timestamp",
    "feed_schema",
    "scd2_first",
    "scd2_step",
    "stream_rows",
    "write_feed",
]
