"""The Glue job's Iceberg commits: Spark tasks write the data files, the driver commits their descriptions.

:class:`SparkIcebergLake` is the CDC stage's :class:`~snapcdc.cdc.iceberg.sync.IcebergLake` with two
things done the Spark way, everything else (the ledger, the order, schema evolution, the commit)
the same code as the CDC function's:

- a run's rows are the files its run record lists (``RunRecord.keys``: N part files per output),
  read from the bucket, never from the driver's disk;
- the data files are written by one Spark task per file of rows, each calling the Lambda path's own
  :func:`~snapcdc.cdc.iceberg.files.write_part` (download the file, conform it to the table's schema,
  upload one Iceberg data file) and sending back its key, rows and bytes. The driver reads each data
  file's footer (one ranged GET) for its ``DataFile`` entry and makes one metadata-only commit: no row
  passes through the driver.

Catch-up (a table behind its ledger) and replay go through the same tasks.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snapcdc.cdc.iceberg.files import PartFile, PartJob, write_part
from snapcdc.cdc.iceberg.maintenance import Retention
from snapcdc.cdc.iceberg.sync import IcebergLake, SnapshotRows, record_rows
from snapcdc.config import PipelineConfig
from snapcdc.lake.layout import Layout
from snapcdc.lake.records import RunRecord
from snapcdc.lake.store import S3Store
from snapcdc.spark.tasks import parallel

if TYPE_CHECKING:
    from snapcdc.engine import DiffOutcome

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskStore:
    """What a task needs to reach the bucket (a plain value: each task builds its own client)."""

    bucket: str
    prefix: str
    endpoint_url: str | None

    def store(self) -> S3Store:
        from snapcdc.spark.sources import s3_client

        return S3Store(s3_client(self.endpoint_url), self.bucket, Layout(self.prefix))


def write_in_task(where: TaskStore, job: PartJob) -> PartFile | None:
    """One Spark task: ``job``'s data file written and uploaded from the executor's scratch space."""
    work = Path(tempfile.mkdtemp(prefix="snapcdc-iceberg-"))
    try:
        return write_part(where.store(), job, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


@dataclass(frozen=True, kw_only=True)
class SparkIcebergLake(IcebergLake):
    spark: Any  # the job's SparkSession
    endpoint_url: str | None = None  # an S3 endpoint for the tasks (the embedded AWS); None on AWS

    def run_rows(self, record: RunRecord, outcome: DiffOutcome) -> SnapshotRows:
        """The run's rows: the files its record lists in the bucket (the driver holds none)."""
        return record_rows(record, self.store, record.base_snapshot)

    def write_parts(self, jobs: Sequence[PartJob], work: Path) -> list[PartFile]:
        """One Spark task per data file; the driver gets back each file's key, rows and bytes."""
        where = TaskStore(self.store.bucket, self.store.layout.prefix, self.endpoint_url)
        written = [part for part in parallel(self.spark, partial(write_in_task, where), list(jobs)) if part]
        logger.info("iceberg data files written", extra={"tasks": len(jobs), "files": len(written)})
        return written


def spark_iceberg_lake(
    config: PipelineConfig,
    store: S3Store,
    glue_client: Any,
    database: str | None,
    spark: Any,
    endpoint_url: str | None = None,
) -> SparkIcebergLake | None:
    """The Glue job's keeper of the Iceberg tables: None when no table enables Iceberg or no database is set."""
    if database is None or not any(t.iceberg for t in config.tables):
        return None
    from snapcdc.cdc.iceberg.catalog import glue_catalog

    catalog = glue_catalog(glue_client, s3_endpoint=endpoint_url)
    retention = Retention(config.iceberg.retention_days)
    return SparkIcebergLake(catalog, store, database, retention, spark=spark, endpoint_url=endpoint_url)
