"""Routing by size: a table snapshot whose raw object is larger than a threshold is diffed by the Spark
job (AWS Glue), not by the CDC function (``docs/scale.md``).

* Never started twice: the function first claims the snapshot with a conditional put of its claim
  (:func:`snapcdc.lake.ledger.claim`, S3 ``If-None-Match: *``); only the caller whose put
  succeeds starts the job run. A claim stays: a failed run alarms, and ``snapcdc replay`` (or deleting
  the claim) is how it is run again.
* Catch-up order across engines: a table's snapshots are processed oldest first. While a claimed
  snapshot has no run record, the function processes nothing later of that table (the event is
  *deferred*, not failed); the job, after writing its run record, processes every later snapshot of
  the table that is still pending, itself, in order, each claimed first (so no second run starts for
  it), and looks again until none is left. A later raw
  object exists before its event is handled, and the function defers only while the record is
  missing, so the job's last look (after its record) always sees it: no snapshot is left behind.

  Why not retries or Step Functions: Lambda retries an async event twice within minutes, while a Glue
  run takes longer (the event would end in the dead-letter queue and alarm on every big table); a
  Step Functions workflow per table would add a state machine and its own ordering lock for what the
  bucket's records already say.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from snapcdc.errors import ControlSignal
from snapcdc.lake import ledger
from snapcdc.lake.store import S3Store
from snapcdc.observability import logger
from snapcdc.settings import JobArgument


def job_arguments(table: str, snap: str, bucket: str, data_prefix: str, glue_database: str | None) -> dict[str, str]:
    """The job run's arguments for one table snapshot (Glue passes them as ``--NAME value``)."""
    return {
        JobArgument.TABLE.flag: table,
        JobArgument.SNAPSHOT.flag: snap,
        JobArgument.BUCKET_NAME.flag: bucket,
        JobArgument.DATA_PREFIX.flag: data_prefix or "-",
        JobArgument.GLUE_DATABASE.flag: glue_database or "-",
    }


class Deferred(ControlSignal):  # not an error: the table's snapshot is the Spark job's
    """The snapshot (or an earlier one of its table) is being processed by the Spark job."""

    def __init__(self, table: str, snap: str, run_id: str | None) -> None:
        self.table, self.snap, self.run_id = table, snap, run_id
        super().__init__(f"{table}@{snap} is processed by the Spark job (run {run_id or 'already claimed'})")


@dataclass(frozen=True)
class SparkRoute:
    """Where big snapshots go: the Glue job, the size from which they go there."""

    glue: Any  # a boto3 Glue client
    job_name: str
    threshold_bytes: int
    glue_database: str | None = None

    def claimed(self, store: S3Store, table: str, snap: str) -> bool:
        return ledger.claimed(store, table, snap)

    def takes(self, store: S3Store, table: str, snap: str, raw_key: str) -> bool:
        """Whether the job processes this snapshot: it is claimed already, or its raw object is big."""
        if self.claimed(store, table, snap):
            return True
        size = store.size(raw_key)
        return size is not None and size > self.threshold_bytes

    def hand_over(self, store: S3Store, table: str, snap: str) -> Deferred:
        """Claims the snapshot and starts the job run (only the first caller does)."""
        arguments = job_arguments(table, snap, store.bucket, store.layout.prefix, self.glue_database)
        if not ledger.claim(store, table, snap, {"job": self.job_name, "arguments": arguments}):
            return Deferred(table, snap, None)  # claimed by another invocation or run: started once already
        run_id = self.glue.start_job_run(JobName=self.job_name, Arguments=arguments)["JobRunId"]
        logger.info("snapshot handed to the Spark job", extra={"table": table, "snapshot": snap, "job_run": run_id})
        return Deferred(table, snap, run_id)
