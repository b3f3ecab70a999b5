"""Snapshot retention and compaction of the Iceberg tables: what is kept, and who expires and compacts.

Every Iceberg snapshot of ``<table>`` is one source snapshot, so expiring Iceberg snapshots is
forgetting source snapshots for time travel. The default keeps them all for
:data:`DEFAULT_RETENTION_DAYS` (the pipeline config's ``iceberg.retention_days``), written into each
table's properties when it is created and again before a commit when the config changed
(:func:`apply_retention`), which the expiry engines read:

- the Iceberg properties ``history.expire.max-snapshot-age-ms`` / ``history.expire.min-snapshots-to-keep``
  (the Glue Data Catalog's retention optimizer, Spark's ``expire_snapshots``);
- Athena's ``vacuum_max_snapshot_age_seconds`` / ``vacuum_min_snapshots_to_keep`` (``VACUUM``);
- :func:`expire_snapshots` here (pyiceberg), by the same rule (:func:`expirable`).

Compaction: ``<table>`` never needs it (each commit replaces the table with the snapshot's files);
``<table>_changes`` gets a small file per snapshot, compacted by the Glue compaction optimizer or
Athena's ``OPTIMIZE ... REWRITE DATA USING BIN_PACK`` on a schedule (``docs/iceberg.md``, "Maintenance").
Compaction writes new files and drops the old ones from the next snapshot: no file is rewritten in place.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyiceberg.table import Table

DEFAULT_RETENTION_DAYS = 3650
DAY_SECONDS = 24 * 3600
# The table properties that carry the retention (and nothing else: the others are set at creation).
RETENTION_PROPERTIES = (
    "history.expire.max-snapshot-age-ms",
    "history.expire.min-snapshots-to-keep",
    "vacuum_max_snapshot_age_seconds",
    "vacuum_min_snapshots_to_keep",
)


@dataclass(frozen=True)
class Retention:
    days: int = DEFAULT_RETENTION_DAYS
    min_snapshots: int = 1  # the current state is never expired

    def __post_init__(self) -> None:
        if self.days < 1 or self.min_snapshots < 1:
            raise ValueError("retention keeps at least one day and one snapshot")


def retention_properties(retention: Retention) -> dict[str, str]:
    seconds = retention.days * DAY_SECONDS
    values = (str(seconds * 1000), str(retention.min_snapshots), str(seconds), str(retention.min_snapshots))
    return dict(zip(RETENTION_PROPERTIES, values, strict=True))


def table_properties(retention: Retention) -> dict[str, str]:
    return {
        "format-version": "2",
        "write.format.default": "parquet",
        "write.parquet.compression-codec": "zstd",
        "commit.retry.num-retries": "0",
        **retention_properties(retention),
    }


def expirable(
    committed_ms: Mapping[int, int],
    newest_first: Sequence[int],
    protected: Collection[int],
    retention: Retention,
    now: datetime,
) -> set[int]:
    """The retention rule: of the Iceberg snapshots (id -> commit time, ms), those expiry may remove at
    ``now``: committed more than ``retention.days`` before it, and neither one of the ``min_snapshots``
    newest of the current state's history (``newest_first``: the current snapshot, its parent...) nor
    a branch's or tag's head (``protected``)."""
    cutoff = int(now.timestamp() * 1000) - retention.days * DAY_SECONDS * 1000
    kept = set(newest_first[: retention.min_snapshots]) | set(protected)
    return {snapshot for snapshot, at in committed_ms.items() if at < cutoff and snapshot not in kept}


def apply_retention(table: Table, retention: Retention) -> bool:
    """The table's retention properties set to ``retention`` (a change of the config's
    ``iceberg.retention_days`` reaches the existing tables); False when they already were."""
    wanted = retention_properties(retention)
    if all(table.properties.get(name) == value for name, value in wanted.items()):
        return False
    with table.transaction() as transaction:
        transaction.set_properties(wanted)
    return True


def expire_snapshots(table: Table, retention: Retention, now: datetime | None = None) -> list[int]:
    """Expires what :func:`expirable` says (one metadata commit; the data files stay, for the
    orphan-file cleanup); returns the ids expired. What the Glue retention optimizer and Athena's
    ``VACUUM`` do from the table's properties, for a deployment that runs neither."""
    metadata = table.metadata
    newest_first, current = [], table.current_snapshot()
    while current is not None:
        newest_first.append(current.snapshot_id)
        parent = current.parent_snapshot_id
        current = metadata.snapshot_by_id(parent) if parent is not None else None
    committed = {s.snapshot_id: s.timestamp_ms for s in metadata.snapshots}
    protected = {ref.snapshot_id for ref in metadata.refs.values()}
    expired = sorted(expirable(committed, newest_first, protected, retention, now or datetime.now(UTC)))
    if expired:
        table.maintenance.expire_snapshots().by_ids(expired).commit()
    return expired
