"""Snapshot retention and compaction of the Iceberg tables: what is kept, and who expires and compacts.

Every Iceberg snapshot of ``<table>`` is one source snapshot, so expiring Iceberg snapshots is
forgetting source snapshots for time travel. The default keeps them all for
:data:`DEFAULT_RETENTION_DAYS` (the pipeline config's ``iceberg.retention_days``), written into each
table's properties, which both expiry engines read:

- the Iceberg properties ``history.expire.max-snapshot-age-ms`` / ``history.expire.min-snapshots-to-keep``
  (the Glue Data Catalog's retention optimizer, Spark's ``expire_snapshots``);
- Athena's ``vacuum_max_snapshot_age_seconds`` / ``vacuum_min_snapshots_to_keep`` (``VACUUM``).

Compaction: ``<table>`` never needs it (each commit replaces the table with the snapshot's files);
``<table>_changes`` gets a small file per snapshot, compacted by the Glue compaction optimizer or
Athena's ``OPTIMIZE ... REWRITE DATA USING BIN_PACK`` on a schedule (``docs/iceberg.md``, "Maintenance").
Compaction writes new files and drops the old ones from the next snapshot: no file is rewritten in place.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_RETENTION_DAYS = 3650
DAY_SECONDS = 24 * 3600


@dataclass(frozen=True)
class Retention:
    days: int = DEFAULT_RETENTION_DAYS
    min_snapshots: int = 1  # the current state is never expired

    def __post_init__(self) -> None:
        if self.days < 1 or self.min_snapshots < 1:
            raise ValueError("retention keeps at least one day and one snapshot")


def table_properties(retention: Retention) -> dict[str, str]:
    seconds = retention.days * DAY_SECONDS
    return {
        "format-version": "2",
        "write.format.default": "parquet",
        "write.parquet.compression-codec": "zstd",
        "commit.retry.num-retries": "0",
        "history.expire.max-snapshot-age-ms": str(seconds * 1000),
        "history.expire.min-snapshots-to-keep": str(retention.min_snapshots),
        "vacuum_max_snapshot_age_seconds": str(seconds),
        "vacuum_min_snapshots_to_keep": str(retention.min_snapshots),
    }
