"""A failed Spark job run heals: when a run of the stack's Glue job ends FAILED, TIMEOUT, STOPPED or ERROR
(EventBridge "Glue Job State Change"), the claim the run held is released and the table's run started
again, a bounded number of times (:func:`snapcdc.cdc.routing.restart`); then the restarts are given up and
the table waits, alarmed, for an operator (``docs/operations.md``).

What the run held: the table's earliest snapshot from the run's ``--SNAPSHOT`` on that is claimed and has
no run record (a run that failed while catching up a later snapshot holds that one). A claim that names
another run (started again already, or taken over) is not this run's to heal: nothing is done.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from snapcdc.cdc.routing import restart
from snapcdc.lake.ledger import blocking_claim
from snapcdc.lake.store import S3Store
from snapcdc.settings import JobArgument

# The states of a run that ended without finishing its snapshot.
FAILED_STATES = ("FAILED", "TIMEOUT", "STOPPED", "ERROR")
logger = logging.getLogger(__name__)

Action = Literal["restarted", "given_up", "nothing_held", "held_by_another_run", "lost_race", "not_a_failure"]


@dataclass(frozen=True)
class Healing:
    """What one failed run's event led to, for the handler's metrics and log."""

    job_run: str
    state: str
    action: Action
    table: str | None = None
    snapshot: str | None = None
    attempt: int = 0
    new_job_run: str | None = None

    def summary(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass(frozen=True)
class Healer:
    store: S3Store
    glue: Any  # a boto3 Glue client
    job_name: str
    max_restarts: int

    def heal(self, job_run: str, state: str) -> Healing:
        """Releases the claim the run held and starts its table again (or gives up past the bound)."""
        if state not in FAILED_STATES:
            return Healing(job_run, state, "not_a_failure")
        arguments: dict[str, str] = self.glue.get_job_run(JobName=self.job_name, RunId=job_run)["JobRun"].get(
            "Arguments", {}
        )
        table, snap = arguments.get(JobArgument.TABLE.flag), arguments.get(JobArgument.SNAPSHOT.flag)
        if not table or not snap:
            logger.error("failed job run without --TABLE/--SNAPSHOT", extra={"job_run": job_run})
            return Healing(job_run, state, "nothing_held")
        held = blocking_claim(self.store, table, since=snap)
        if held is None:
            return Healing(job_run, state, "nothing_held", table, snap)
        if held.claim.job_run not in (None, job_run):
            return Healing(job_run, state, "held_by_another_run", table, held.snapshot, held.claim.attempt)
        reason = f"job run {job_run} ended {state}"
        done = restart(self.store, self.glue, self.job_name, held, arguments, self.max_restarts, reason)
        action: Action = "lost_race" if done.lost_race else "given_up" if done.given_up else "restarted"
        return Healing(job_run, state, action, table, held.snapshot, done.attempt, done.job_run)
