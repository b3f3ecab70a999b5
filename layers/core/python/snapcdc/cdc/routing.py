"""Routing by size: a table snapshot whose raw object is larger than a threshold is diffed by the Spark
job (AWS Glue), not by the CDC function (``docs/scale.md``).

* Never started twice: the function first claims the snapshot with a conditional put of its claim
  (:func:`snapcdc.lake.ledger.claim`, S3 ``If-None-Match: *``); only the caller whose put
  succeeds starts the job run, and writes the run's id into the claim.
* Catch-up order across engines: a table's snapshots are processed oldest first. While a claimed
  snapshot has no run record, the function processes nothing later of that table (the event is
  *deferred*, not failed); the job, after writing its run record, processes every later snapshot of
  the table that is still pending, itself, in order, each claimed first (so no second run starts for
  it), and looks again until none is left. A later raw
  object exists before its event is handled, and the function defers only while the record is
  missing, so the job's last look (after its record) always sees it: no snapshot is left behind.
* A failed run heals (:mod:`snapcdc.cdc.healing`): its claim is replaced, in one conditional put on the
  claim's ETag (``If-Match``), by a claim one attempt further on, and the table's job run is started
  again (:func:`restart`); past ``max_restarts`` attempts the claim is marked given up and the table waits
  for an operator. A claim older than the job's timeout whose run never reported back is taken over the
  same way by the CDC function. Whoever loses the conditional put starts nothing, so two takers never
  both start a run.

  Why not retries or Step Functions: Lambda retries an async event twice within minutes, while a Glue
  run takes longer (the event would end in the dead-letter queue and alarm on every big table); a
  Step Functions workflow per table would add a state machine and its own ordering lock for what the
  bucket's records already say.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from snapcdc.errors import ControlSignal
from snapcdc.lake import ledger
from snapcdc.lake.ledger import Claim, HeldClaim
from snapcdc.lake.store import S3Store
from snapcdc.settings import JobArgument

# The arguments the job reads, of a run's (Glue adds its own, --JOB_RUN_ID and others).
RUN_ARGUMENTS = tuple(a.flag for a in (JobArgument.TABLE, JobArgument.SNAPSHOT, JobArgument.BUCKET_NAME,
                                       JobArgument.DATA_PREFIX, JobArgument.GLUE_DATABASE))  # fmt: skip
logger = logging.getLogger(__name__)


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
class Restart:
    """What :func:`restart` did with a held claim: started run ``job_run`` (attempt ``attempt``), gave up
    (``given_up``), or nothing because another taker changed the claim first (``lost_race``)."""

    table: str
    snapshot: str
    attempt: int
    job_run: str | None = None
    given_up: bool = False
    lost_race: bool = False


def restart(
    store: S3Store, glue: Any, job_name: str, held: HeldClaim, arguments: dict[str, str], max_restarts: int, reason: str
) -> Restart:
    """Releases ``held`` and claims the snapshot again in one conditional put, one attempt further on, then
    starts the job run for it; past ``max_restarts`` attempts marks the claim given up instead."""
    table, snap, attempt = held.table, held.snapshot, held.claim.attempt
    if attempt >= max_restarts:
        given_up = held.claim.model_copy(update={"given_up": True, "reason": reason})
        if ledger.replace_claim(store, held, given_up) is None:
            return Restart(table, snap, attempt, lost_race=True)
        logger.error("spark job restarts given up", extra={"table": table, "snapshot": snap, "attempt": attempt})
        return Restart(table, snap, attempt, given_up=True)
    arguments = {**{k: v for k, v in arguments.items() if k in RUN_ARGUMENTS}, JobArgument.SNAPSHOT.flag: snap}
    renewed = Claim(job=job_name, arguments=arguments, attempt=attempt + 1, reason=reason)
    now_held = ledger.replace_claim(store, held, renewed)
    if now_held is None:
        return Restart(table, snap, attempt, lost_race=True)
    run_id = str(glue.start_job_run(JobName=job_name, Arguments=arguments)["JobRunId"])
    ledger.replace_claim(store, now_held, renewed.model_copy(update={"job_run": run_id}))
    logger.info(
        "spark job run started again",
        extra={"table": table, "snapshot": snap, "attempt": attempt + 1, "job_run": run_id, "reason": reason},
    )
    return Restart(table, snap, attempt + 1, job_run=run_id)


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class SparkRoute:
    """Where big snapshots go: the Glue job, the size from which they go there; after how long a claim
    whose run never reported back is taken over, and how many times a table's run is started again."""

    glue: Any  # a boto3 Glue client
    job_name: str
    threshold_bytes: int
    glue_database: str | None = None
    stale_after: timedelta | None = None  # the job's timeout; None: claims are never taken over
    max_restarts: int = 2
    clock: Callable[[], datetime] = field(default=_now)

    def claimed(self, store: S3Store, table: str, snap: str) -> bool:
        return ledger.claimed(store, table, snap)

    def takes(self, store: S3Store, table: str, snap: str, raw_key: str) -> bool:
        """Whether the job processes this snapshot: it is claimed already, or its raw object is big."""
        if self.claimed(store, table, snap):
            return True
        size = store.size(raw_key)
        return size is not None and size > self.threshold_bytes

    def hand_over(self, store: S3Store, table: str, snap: str) -> Deferred:
        """Claims the snapshot and starts the job run (only the first caller does); a stale claim is taken over."""
        arguments = job_arguments(table, snap, store.bucket, store.layout.prefix, self.glue_database)
        if not ledger.claim(store, table, snap, Claim(job=self.job_name, arguments=arguments)):
            return self._take_over_if_stale(store, table, snap, arguments)
        run_id = str(self.glue.start_job_run(JobName=self.job_name, Arguments=arguments)["JobRunId"])
        # The run's id in the claim: the state-change handler heals only the run that holds it.
        held = ledger.read_claim(store, table, snap)
        if held is not None and held.claim.job_run is None:
            ledger.replace_claim(store, held, held.claim.model_copy(update={"job_run": run_id}))
        logger.info("snapshot handed to the Spark job", extra={"table": table, "snapshot": snap, "job_run": run_id})
        return Deferred(table, snap, run_id)

    def _take_over_if_stale(self, store: S3Store, table: str, snap: str, arguments: dict[str, str]) -> Deferred:
        held = ledger.read_claim(store, table, snap)
        if held is None or held.claim.given_up or self.stale_after is None:
            return Deferred(table, snap, None)  # claimed by another invocation or run: started once already
        if self.clock() - held.written_at <= self.stale_after:
            return Deferred(table, snap, None)
        reason = f"claim older than the job's timeout ({self.stale_after}), taken over by the CDC function"
        restarted = restart(store, self.glue, self.job_name, held, arguments, self.max_restarts, reason)
        return Deferred(table, snap, restarted.job_run)
