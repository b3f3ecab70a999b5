"""Routing by size, end to end on moto: with the threshold lowered, the CDC function hands the big
tables' snapshots to the Glue job (moto records the job runs and their arguments), the job's code runs
on local Spark with those arguments against the moto server, and ``verify`` passes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from snapcdc.cdc.routing import job_arguments
from snapcdc.spark import job
from snapcdc_dev.demo import BUCKET

from tests.e2e.conftest import CONFIG, MOMENTS, Lab, open_lab

JOB = "snapcdc-cdc-spark"
THRESHOLD = 20_000  # bytes: some of the sample dataset's tables are above, some below


@pytest.fixture
def lab(spark: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    monkeypatch.setenv("SPARK_JOB_NAME", JOB)
    monkeypatch.setenv("SPARK_THRESHOLD_BYTES", str(THRESHOLD))
    with open_lab(tmp_path) as lab:
        lab.aws.client("glue").create_job(
            Name=JOB, Role="arn:aws:iam::123456789012:role/glue", Command={"Name": "glueetl", "ScriptLocation": "x"}
        )
        yield lab


def _runs(lab: Lab) -> list[dict[str, Any]]:
    return lab.aws.client("glue").get_job_runs(JobName=JOB)["JobRuns"]


def _run_job(lab: Lab, run: dict[str, Any]) -> None:
    """The Glue job's code, with the run's arguments, on local Spark against the moto server."""
    arguments = [item for name, value in run["Arguments"].items() for item in (name, value)]
    assert job.main([*arguments, "--S3_ENDPOINT_URL", lab.aws.endpoint]) == 0


def _big_tables(lab: Lab, snap: str) -> set[str]:
    sizes = {}
    for table in CONFIG.tables:
        key = lab.store.layout.raw_key(table.name, snap, table.file)
        sizes[table.name] = lab.store.client.head_object(Bucket=BUCKET, Key=key)["ContentLength"]
    return {name for name, size in sizes.items() if size > THRESHOLD}


def test_big_tables_go_to_the_glue_job_once_in_order_and_verify(lab: Lab) -> None:
    # Given a first snapshot whose big tables are above the lowered threshold
    first_keys = lab.publish_and_extract(MOMENTS[0])
    first = lab.raw_keys(MOMENTS[0])[0].split("snapshot=")[1].split("/")[0]
    big = _big_tables(lab, first)
    assert big and big != set(CONFIG.table_names)
    # When the CDC function gets the events (twice: a duplicated delivery)
    summary = lab.deliver(first_keys)
    again = lab.deliver(first_keys)
    # Then each big table's snapshot was claimed and its job run started once, with the snapshot's arguments
    assert sorted(summary["deferred_to_spark"]) == sorted(f"{t}@{first}" for t in big)
    assert sorted(again["deferred_to_spark"]) == sorted(summary["deferred_to_spark"])
    runs = _runs(lab)
    assert sorted(r["Arguments"]["--TABLE"] for r in runs) == sorted(big)
    for run in runs:
        assert run["Arguments"] == job_arguments(run["Arguments"]["--TABLE"], first, BUCKET, "", None)
        assert lab.store.exists(lab.store.layout.claim_key(run["Arguments"]["--TABLE"], first))
    # and the small tables were processed by the function itself
    assert {p["table"] for p in summary["processed"]} == set(CONFIG.table_names) - big

    # Given a second snapshot arriving while the first runs are in flight
    second_keys = lab.publish_and_extract(MOMENTS[1])
    second = lab.raw_keys(MOMENTS[1])[0].split("snapshot=")[1].split("/")[0]
    summary = lab.deliver(second_keys)
    # Then the big tables' later snapshot is deferred (not started: the earlier run is in flight)
    assert len(_runs(lab)) == len(big)
    assert {d.split("@")[0] for d in summary["deferred_to_spark"]} == big
    # When the job runs complete (each catching up its table's later snapshot)
    for run in _runs(lab):
        _run_job(lab, run)
    # Then every table snapshot has its run record, and the lake verifies
    for table in CONFIG.table_names:
        records = [k for k in lab.store.list_keys(f"_runs/{table}/") if not k.endswith(".glue.json")]
        assert len(records) == 2, table
    lab.assert_verified()
    # And the job claimed the later snapshots it caught up: a late duplicate event starts nothing
    for table in big:
        assert lab.store.exists(lab.store.layout.claim_key(table, second))
    late = lab.deliver(second_keys)
    assert late["deferred_to_spark"] == []
    assert len(_runs(lab)) == len(big)
