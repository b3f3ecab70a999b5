"""The Spark job's claims (moto, in process): one taker wins each conditional put, a failed run's table is
started again a bounded number of times and then given up, and a claim older than the job's timeout is taken
over by the CDC function, never one that is fresh or given up."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws
from snapcdc.cdc.healing import FAILED_STATES, Healer
from snapcdc.cdc.routing import SparkRoute, job_arguments
from snapcdc.lake.layout import Layout
from snapcdc.lake.ledger import Claim, blocking_claim, claim, read_claim, replace_claim
from snapcdc.lake.store import S3Store

from tests.support import BUCKET

JOB = "snapcdc-cdc-spark"
TABLE = "clientes"
SNAP, LATER = "20260105T090000Z", "20260105T130000Z"
TIMEOUT = timedelta(minutes=120)


@pytest.fixture
def aws() -> Iterator[tuple[S3Store, Any]]:
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        glue = boto3.client("glue", region_name="us-east-1")
        glue.create_job(Name=JOB, Role="arn:aws:iam::123456789012:role/glue", Command={"Name": "glueetl"})
        yield S3Store(s3, BUCKET, Layout("lake")), glue


def _runs(glue: Any) -> list[dict[str, Any]]:
    return list(glue.get_job_runs(JobName=JOB)["JobRuns"])


def _route(glue: Any, now: datetime | None = None, max_restarts: int = 2) -> SparkRoute:
    return SparkRoute(
        glue, JOB, 0, stale_after=TIMEOUT, max_restarts=max_restarts, clock=lambda: now or datetime.now(UTC)
    )


def _handed_over(store: S3Store, glue: Any) -> str:
    """The CDC function's hand-over of SNAP: claim, run, the run's id written into the claim."""
    deferred = _route(glue).hand_over(store, TABLE, SNAP)
    assert deferred.run_id is not None
    return deferred.run_id


def test_the_hand_over_writes_the_run_into_the_claim(aws: tuple[S3Store, Any]) -> None:
    # Given a snapshot handed to the job
    store, glue = aws
    run_id = _handed_over(store, glue)
    # Then its claim names the run, attempt 0, with the run's arguments; a second hand-over starts nothing
    held = read_claim(store, TABLE, SNAP)
    assert held is not None
    assert (held.claim.job_run, held.claim.attempt, held.claim.given_up) == (run_id, 0, False)
    assert held.claim.arguments == job_arguments(TABLE, SNAP, BUCKET, "lake", None)
    assert _route(glue).hand_over(store, TABLE, SNAP).run_id is None
    assert len(_runs(glue)) == 1


def test_two_takers_of_one_claim_version_cannot_both_win(aws: tuple[S3Store, Any]) -> None:
    # Given a claim read by two takers (the same ETag)
    store, _ = aws
    assert claim(store, TABLE, SNAP, Claim(job=JOB))
    first, second = read_claim(store, TABLE, SNAP), read_claim(store, TABLE, SNAP)
    assert first is not None and second is not None
    # When both replace it
    won = replace_claim(store, first, Claim(job=JOB, attempt=1, reason="first"))
    lost = replace_claim(store, second, Claim(job=JOB, attempt=1, reason="second"))
    # Then exactly the first put took effect, and the claim says so
    assert won is not None and lost is None
    now = read_claim(store, TABLE, SNAP)
    assert now is not None and now.claim.reason == "first"
    # And a claim cannot be created twice either
    assert not claim(store, TABLE, SNAP, Claim(job=JOB))


def test_a_failed_run_is_released_and_started_again_then_given_up_past_the_bound(aws: tuple[S3Store, Any]) -> None:
    # Given a snapshot handed to the job, and a healer allowed 2 restarts
    store, glue = aws
    run_id = _handed_over(store, glue)
    healer = Healer(store, glue, JOB, max_restarts=2)
    # When its runs keep failing (FAILED, then TIMEOUT, then STOPPED)
    outcomes = []
    for state in ("FAILED", "TIMEOUT", "STOPPED"):
        outcome = healer.heal(run_id, state)
        outcomes.append(outcome)
        run_id = outcome.new_job_run or run_id
    # Then it was started again twice, each new run claiming it (attempts 1 and 2), then given up
    assert [(o.action, o.attempt) for o in outcomes] == [("restarted", 1), ("restarted", 2), ("given_up", 2)]
    assert all((o.table, o.snapshot) == (TABLE, SNAP) for o in outcomes)
    runs = _runs(glue)
    assert len(runs) == 3
    assert {r["Arguments"]["--SNAPSHOT"] for r in runs} == {SNAP}
    held = read_claim(store, TABLE, SNAP)
    assert held is not None and held.claim.given_up and held.claim.attempt == 2
    assert "STOPPED" in (held.claim.reason or "")
    # And the same failure delivered again changes nothing more (the claim names that run)
    assert healer.heal(run_id, "STOPPED").action == "given_up"
    assert len(_runs(glue)) == 3


def test_only_the_run_that_holds_the_claim_is_healed(aws: tuple[S3Store, Any]) -> None:
    # Given a failed run that was started again already (a duplicated state-change event)
    store, glue = aws
    run_id = _handed_over(store, glue)
    healer = Healer(store, glue, JOB, max_restarts=2)
    first = healer.heal(run_id, "FAILED")
    # When the same event is handled again
    again = healer.heal(run_id, "FAILED")
    # Then the claim names the new run: nothing is started twice
    assert first.action == "restarted"
    assert again.action == "held_by_another_run"
    assert len(_runs(glue)) == 2
    # And a run that succeeded is no failure to heal
    assert healer.heal(str(first.new_job_run), "SUCCEEDED").action == "not_a_failure"


def test_a_run_that_failed_while_catching_up_heals_the_snapshot_it_held(aws: tuple[S3Store, Any]) -> None:
    # Given a run that finished SNAP (its run record) and claimed LATER to catch it up, then failed
    store, glue = aws
    run_id = _handed_over(store, glue)
    store.put_bytes(store.layout.run_record_key(TABLE, SNAP), b"{}")
    arguments = job_arguments(TABLE, LATER, BUCKET, "lake", None)
    assert claim(store, TABLE, LATER, Claim(arguments=arguments, job_run=run_id))
    # When its failure is handled
    outcome = Healer(store, glue, JOB, max_restarts=2).heal(run_id, "ERROR")
    # Then LATER, the snapshot it held, is started again (SNAP is done)
    assert (outcome.action, outcome.snapshot) == ("restarted", LATER)
    assert sorted(r["Arguments"]["--SNAPSHOT"] for r in _runs(glue)) == [SNAP, LATER]
    held = blocking_claim(store, TABLE, since=SNAP)
    assert held is not None and held.snapshot == LATER and held.claim.job_run == outcome.new_job_run


def test_a_claim_older_than_the_timeout_is_taken_over_by_the_cdc_function(aws: tuple[S3Store, Any]) -> None:
    # Given a snapshot handed to the job whose run never reported back
    store, glue = aws
    first = _handed_over(store, glue)
    # When the table's next event finds the claim before and after the job's timeout
    fresh = _route(glue, now=datetime.now(UTC) + TIMEOUT - timedelta(minutes=1)).hand_over(store, TABLE, SNAP)
    stale = _route(glue, now=datetime.now(UTC) + TIMEOUT + timedelta(minutes=1)).hand_over(store, TABLE, SNAP)
    # Then the fresh claim is left alone, the stale one replaced (attempt 1) and its run started again
    assert fresh.run_id is None
    assert stale.run_id is not None and stale.run_id != first
    held = read_claim(store, TABLE, SNAP)
    assert held is not None and (held.claim.attempt, held.claim.job_run) == (1, stale.run_id)
    assert len(_runs(glue)) == 2


def test_a_given_up_claim_is_never_taken_over(aws: tuple[S3Store, Any]) -> None:
    # Given a table whose restarts were given up
    store, glue = aws
    run_id = _handed_over(store, glue)
    assert Healer(store, glue, JOB, max_restarts=0).heal(run_id, "FAILED").action == "given_up"
    # When a later event finds its claim long after the timeout
    deferred = _route(glue, now=datetime.now(UTC) + 10 * TIMEOUT).hand_over(store, TABLE, SNAP)
    # Then nothing is started: the table waits for an operator
    assert deferred.run_id is None
    assert len(_runs(glue)) == 1


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    events=st.lists(st.tuples(st.sampled_from(FAILED_STATES), st.booleans()), min_size=1, max_size=6),
    bound=st.integers(min_value=0, max_value=3),
)
def test_restarts_never_exceed_the_bound_whatever_the_events(events: list[tuple[str, bool]], bound: int) -> None:
    # Given a handed-over snapshot, and failure events of its current run, some delivered twice
    with mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        glue = boto3.client("glue", region_name="us-east-1")
        glue.create_job(Name=JOB, Role="arn:aws:iam::123456789012:role/glue", Command={"Name": "glueetl"})
        store = S3Store(s3, BUCKET, Layout())
        run_id = _handed_over(store, glue)
        healer = Healer(store, glue, JOB, max_restarts=bound)
        for state, twice in events:
            outcome = healer.heal(run_id, state)
            if twice:
                healer.heal(run_id, state)
            run_id = outcome.new_job_run or run_id
        # Then the table was started at most `bound` more times, and the claim's attempts count them
        held = read_claim(store, TABLE, SNAP)
        assert held is not None
        assert len(_runs(glue)) == 1 + held.claim.attempt <= 1 + bound
        assert held.claim.given_up == (len(events) > bound)
        assert store.exists(store.layout.claim_key(TABLE, SNAP))
