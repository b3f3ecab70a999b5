"""One CDC invocation: the raw objects of an event fanned out to their tables' stages, and what each did.

Tables are independent: one table's failure is recorded and the others go on. A failure of kind
:class:`~snapcdc.errors.PermanentError` (bad configuration, a record or catalog that cannot be read or
written as it is, a migration that cannot be done) is recorded as permanent: retrying the event cannot
help, so the caller does not ask Lambda to. Any other failure is transient: the caller raises it after
the other tables ran, and Lambda retries the event (done work is a no-op).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snapcdc.cdc.catalog import GlueCatalog
from snapcdc.cdc.engines import ArrowEngine, CdcEngine
from snapcdc.cdc.routing import Deferred, SparkRoute
from snapcdc.cdc.stage import TableProcessor
from snapcdc.config import PipelineConfig
from snapcdc.errors import PermanentError
from snapcdc.lake.records import RunRecord
from snapcdc.lake.snapshot import Snapshot, SnapshotIdError
from snapcdc.lake.store import S3Store

if TYPE_CHECKING:  # pyiceberg is imported only where a table enables Iceberg
    from snapcdc.cdc.iceberg.sync import IcebergLake


@dataclass
class BatchReport:
    """What one CDC invocation did: records per processed snapshot, failures per table by kind."""

    records: list[RunRecord] = field(default_factory=list)
    already_done: list[tuple[str, str]] = field(default_factory=list)
    deferred: list[tuple[str, str]] = field(default_factory=list)  # (table, snapshot) the Spark job processes
    ignored_keys: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)  # transient: a retry of the event may succeed
    permanent_failures: dict[str, str] = field(default_factory=dict)  # a retry of the event cannot help

    def summary(self) -> dict[str, Any]:
        return {
            "processed": [
                {"table": r.table, "snapshot": r.snapshot, "status": r.status, **r.stats} for r in self.records
            ],
            "already_done": [f"{table}@{snap}" for table, snap in self.already_done],
            "deferred_to_spark": [f"{table}@{snap}" for table, snap in self.deferred],
            "ignored_keys": self.ignored_keys,
            "failures": self.failures,
            "permanent_failures": self.permanent_failures,
        }


def process_raw_keys(
    store: S3Store,
    config: PipelineConfig,
    keys: list[str],
    work_dir: Path | None = None,
    catalog: GlueCatalog | None = None,
    route: SparkRoute | None = None,
    engine: CdcEngine | None = None,
    iceberg: Callable[[], IcebergLake | None] | None = None,
) -> BatchReport:
    """Process the table snapshots that ``keys`` (raw CSV object keys) belong to, each table's in order.

    ``engine``: the diff (the Arrow engine unless given). With a ``catalog``, each accepted snapshot's
    Glue tables are synced before its run record is written. ``iceberg`` builds the Iceberg tables'
    keeper (docs/iceberg.md), and is called only for a table that enables Iceberg: building it imports
    pyiceberg, and with it pandas (``pyarrow.dataset`` builds a scalar at import), about 0.6 s of CPU
    that an event of the other tables does not pay.
    """
    report = BatchReport()
    wanted: dict[str, set[Snapshot]] = {}
    for key in keys:
        raw = store.layout.parse_raw_key(key)
        if raw is None or raw.table not in config.table_names:
            report.ignored_keys.append(key)
            continue
        try:
            wanted.setdefault(raw.table, set()).add(Snapshot.parse(raw.snap))
        except SnapshotIdError as error:  # a key of the table's folder that names no snapshot time
            report.permanent_failures[raw.table] = f"{type(error).__name__}: {error}"
    for table, snapshots in sorted(wanted.items()):
        spec = config.table(table)
        try:
            processor = TableProcessor(
                store,
                spec,
                **({"work_dir": work_dir} if work_dir else {}),
                catalog=catalog,
                route=route,
                engine=engine or ArrowEngine(),
                iceberg=iceberg() if iceberg is not None and spec.iceberg else None,
            )
            for snapshot in sorted(snapshots):
                done = processor.process(snapshot)
                if not done:
                    report.already_done.append((table, snapshot.id))
                report.records.extend(done)
        except Deferred as deferred:  # the Spark job processes it, and the table's later snapshots
            report.deferred.append((deferred.table, deferred.snap))
        except PermanentError as error:  # recorded; the caller does not ask for a retry
            report.permanent_failures[table] = f"{type(error).__name__}: {error}"
        except Exception as error:  # recorded and re-raised by the caller after the other tables
            report.failures[table] = f"{type(error).__name__}: {error}"
    return report
