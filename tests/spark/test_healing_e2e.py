"""A failed run heals, end to end on the moto server: a Glue job run killed in the middle of writing a table
snapshot's outputs leaves the snapshot claimed and half written; its "Glue Job State Change" (FAILED) goes
to the state-change handler, which releases the claim and starts the table's run again (moto records it);
that run, the job's code on local Spark, finishes the snapshot, ``verify`` passes, and the table holds the
rows the Lambda engine computes from the same raw files: none lost, none doubled."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from snapcdc.engine import DiffOutcome, TableSpec, diff_files
from snapcdc.engine.spec import HASH_COLUMNS
from snapcdc.lake.layout import snapshot_time
from snapcdc.lake.ledger import read_claim, read_run_record
from snapcdc.lake.store import S3Store
from snapcdc.spark import job
from snapcdc_dev.demo import load_handler
from snapcdc_dev.events import LocalLambdaContext

from tests.e2e.conftest import CONFIG, MOMENTS, Lab, open_lab

JOB = "snapcdc-cdc-spark"
THRESHOLD = 20_000  # bytes: the sample dataset's big tables go to the job (as in test_routing_e2e.py)


class JobKilled(RuntimeError):
    """The Glue run dies here (out of memory, a stopped run, a lost driver)."""


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
    return list(lab.aws.client("glue").get_job_runs(JobName=JOB)["JobRuns"])


def _run_job(lab: Lab, run: dict[str, Any]) -> None:
    """The Glue job's code with the run's arguments (and its id, as Glue passes it) on local Spark."""
    arguments = [item for name, value in run["Arguments"].items() for item in (name, value)]
    assert job.main([*arguments, "--JOB_RUN_ID", run["Id"], "--S3_ENDPOINT_URL", lab.aws.endpoint]) == 0


def _state_change(run_id: str, state: str) -> dict[str, Any]:
    """The EventBridge event Glue sends when a run ends (the rule's target gets it as is)."""
    return {
        "version": "0",
        "id": f"state-{run_id[:8]}",
        "detail-type": "Glue Job State Change",
        "source": "aws.glue",
        "account": "123456789012",
        "time": "2026-01-05T13:30:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"jobName": JOB, "severity": "ERROR", "state": state, "jobRunId": run_id, "message": "killed"},
    }


def test_a_run_killed_mid_write_is_healed_and_the_next_run_finishes(
    lab: Lab, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a first snapshot done (its big tables by the job), and a second one handed to the job
    lab.deliver(lab.publish_and_extract(MOMENTS[0]))
    for run in _runs(lab):
        _run_job(lab, run)
    second = lab.deliver(lab.publish_and_extract(MOMENTS[1]))
    (deferred, *_) = sorted(second["deferred_to_spark"])
    table, snap = deferred.split("@")
    (run,) = [r for r in _runs(lab) if r["Arguments"]["--SNAPSHOT"] == snap and r["Arguments"]["--TABLE"] == table]
    held = read_claim(lab.store, table, snap)
    assert held is not None and held.claim.job_run == run["Id"]

    # When that run dies after its diff tasks wrote the snapshot's parts, before the change set and feeds
    written: list[str] = []
    folder = lab.store.layout.snapshot_key(table, snap).rsplit("/", 1)[0] + "/"

    def dying_merge(*args: Any, **kwargs: Any) -> None:
        written.extend(lab.store.list_keys(folder))
        raise JobKilled(f"killed after writing {len(written)} parts under {folder}")

    with monkeypatch.context() as patch:
        patch.setattr(job, "merge", dying_merge)
        with pytest.raises(JobKilled):
            _run_job(lab, run)
    # Then the snapshot is half written: its parts, no run record, the claim still the dead run's
    assert written and all(lab.store.exists(key) for key in written)
    assert read_run_record(lab.store, table, snap) is None

    # When Glue reports the run FAILED to the state-change handler
    healed = load_handler("spark_state").lambda_handler(
        _state_change(run["Id"], "FAILED"), LocalLambdaContext("snapcdc-spark-state")
    )
    # Then the claim was released and taken again (attempt 1) by a new run of the same snapshot
    assert (healed["action"], healed["table"], healed["snapshot"], healed["attempt"]) == ("restarted", table, snap, 1)
    (again,) = [r for r in _runs(lab) if r["Id"] == healed["new_job_run"]]
    assert (again["Arguments"]["--TABLE"], again["Arguments"]["--SNAPSHOT"]) == (table, snap)
    held = read_claim(lab.store, table, snap)
    assert held is not None and (held.claim.attempt, held.claim.job_run) == (1, again["Id"])
    # and the handler counted the failure and the restart for the table (EMF lines on its standard output)
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith('{"_aws"')]
    assert any(m.get("table") == table and m.get("SparkRunsRestarted") == [1.0] for m in emitted)

    # When the new run (and the other tables' runs) complete
    for other in [r for r in _runs(lab) if r["Arguments"]["--SNAPSHOT"] == snap and r["Id"] != run["Id"]]:
        _run_job(lab, other)
    # Then every snapshot has its run record, and the lake verifies
    record = read_run_record(lab.store, table, snap)
    assert record is not None and record.status == "accepted"
    lab.assert_verified()
    # And the table is what the Lambda engine makes of the same raw files: no row lost, none doubled
    expected = _lambda_engine(lab.store, table, [str(record.base_snapshot), snap], tmp_path / "engine")
    key = list(CONFIG.table(table).primary_key)
    parts = [lab.store.download_file(k, tmp_path / f"lake-{i}.parquet") for i, k in enumerate(record.keys("snapshot"))]
    got = _rows(parts, key)
    want = _rows(expected.snapshot_path, key)
    assert got.num_rows == want.num_rows == len(set(zip(*(got.column(k).to_pylist() for k in key), strict=True)))
    assert got.equals(want.select(got.column_names))
    assert (record.stats["inserts"], record.stats["deletes"]) == (expected.stats.inserts, expected.stats.deletes)


def _lambda_engine(store: S3Store, table: str, snaps: list[str], work: Path) -> DiffOutcome:
    """The Lambda engine's diff of ``snaps`` in order, from the raw files: the last one's outcome."""
    config = CONFIG.table(table)
    outcome = None
    for snap in snaps:
        raw = store.download_file(store.layout.raw_key(table, snap, config.file), work / snap / config.file)
        outcome = diff_files(
            old=outcome.snapshot_path if outcome else None,
            new=raw,
            spec=TableSpec.from_config(config),
            observed_at=snapshot_time(snap),
            out_dir=work / snap / "out",
        )
    assert outcome is not None
    return outcome


def _rows(path: Path | list[Path], key: list[str]) -> pa.Table:
    """A snapshot's rows, from its file or its N part files (without the engine's hash columns), in key order."""
    paths = path if isinstance(path, list) else [path]
    rows = pa.concat_tables([pq.read_table(p).replace_schema_metadata(None) for p in paths])
    rows = rows.drop_columns([c for c in HASH_COLUMNS if c in rows.column_names])
    return rows.sort_by([(k, "ascending") for k in key])
