"""The job starts on Glue exactly as deployed: glue/cdc_job.py runs end to end in an environment holding only
what AWS Glue 5.0 provides, what the synthesized template's ``--additional-python-modules`` installs over it,
and the template's ``--extra-py-files`` zip (tests/spark/glue_environment.py), under spark-submit with the
template's ``--conf`` settings, on one table snapshot the CDC function handed to the job (moto server): its
outputs, its run record and its Iceberg commit (pyiceberg from ``--additional-python-modules``)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from snapcdc.cdc.iceberg.commit import committed_snapshots
from snapcdc.cdc.iceberg.sync import iceberg_lake
from snapcdc.lake.ledger import read_run_record
from snapcdc.ops.verify import verify

from tests.e2e.conftest import CONFIG, MOMENTS, Lab, open_lab
from tests.infra.cfn_helpers import render
from tests.infra.synthesis import synthesize

from .glue_environment import REPO_ROOT, GlueEnvironment, asset_hash, glue_environment, zip_package

JOB = "snapcdc-cdc-spark"
THRESHOLD = 20_000  # bytes: the sample dataset's big tables go to the job (as in test_routing_e2e.py)
# Our arguments; Glue merges the job's DefaultArguments under a run's own Arguments.
RUN_ARGUMENTS = ("--TABLE", "--SNAPSHOT", "--BUCKET_NAME", "--DATA_PREFIX", "--GLUE_DATABASE")
ICEBERG_TABLE = "clientes"  # above the threshold, and Iceberg on in the packaged config
DATABASE = "snapcdc_glue_job"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The job's definition in the template `make synth` writes, and where its assets were staged."""
    outdir = tmp_path_factory.mktemp("cdk-glue")
    synth = synthesize(outdir)
    (job,) = synth.resources("AWS::Glue::Job").values()
    return {"properties": job["Properties"], "outdir": outdir}


@pytest.fixture
def lab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Lab]:
    monkeypatch.setenv("SPARK_JOB_NAME", JOB)
    monkeypatch.setenv("SPARK_THRESHOLD_BYTES", str(THRESHOLD))
    with open_lab(tmp_path) as lab:
        lab.aws.client("glue").create_job(
            Name=JOB, Role="arn:aws:iam::123456789012:role/glue", Command={"Name": "glueetl", "ScriptLocation": "x"}
        )
        yield lab


def _conf_pairs(conf: str) -> list[str]:
    """Glue's one ``--conf`` value (``a=1 --conf b=2``) as spark-submit arguments."""
    return [item for pair in conf.split("--conf") for item in ("--conf", pair.strip())]


def _spark_submit(environment: GlueEnvironment, script: Path, package: Path, conf: str, arguments: list[str]) -> Any:
    import pyspark

    spark_submit = Path(pyspark.__file__).parent / "bin" / "spark-submit"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env |= {
        "PYSPARK_PYTHON": str(environment.python),
        "PYSPARK_DRIVER_PYTHON": str(environment.python),
        "PYTHONNOUSERSITE": "1",
        "SPARK_LOCAL_IP": "127.0.0.1",
    }
    command = [
        str(spark_submit),
        "--master",
        "local[2]",
        "--conf",
        "spark.ui.enabled=false",
        "--conf",
        "spark.driver.host=127.0.0.1",
        *_conf_pairs(conf),
        "--py-files",
        str(package),
        str(script),
        *arguments,
    ]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=package.parent)


def test_the_job_runs_end_to_end_with_only_what_glue_5_and_the_template_provide(
    lab: Lab, deployed: dict[str, Any], tmp_path: Path
) -> None:
    # Given the job as synthesized: its script, its code zip, the modules it installs, its Spark settings
    job, outdir = deployed["properties"], deployed["outdir"]
    defaults = job["DefaultArguments"]
    script = outdir / f"asset.{asset_hash(render(job['Command']['ScriptLocation']))}.py"
    package = zip_package(outdir / f"asset.{asset_hash(render(defaults['--extra-py-files']))}", tmp_path / "core.zip")
    assert script.read_bytes() == (REPO_ROOT / "glue" / "cdc_job.py").read_bytes()
    # And an environment of Glue 5.0's modules plus those: no Powertools, X-Ray SDK or moto in it
    environment = glue_environment(defaults["--additional-python-modules"])
    pinned = dict(module.split("==") for module in defaults["--additional-python-modules"].split(","))
    assert environment.versions(list(pinned)) == pinned
    assert environment.importable(["aws_lambda_powertools", "aws_xray_sdk", "moto", "pyspark"]) == ["pyspark"]
    # And a big table's snapshot that the CDC function handed to the job (a run started in moto), a table
    # with Iceberg on, and the Glue database of the deployment
    lab.deliver(lab.publish_and_extract(MOMENTS[0]))
    runs = {run["Arguments"]["--TABLE"]: run for run in lab.aws.client("glue").get_job_runs(JobName=JOB)["JobRuns"]}
    run = runs[ICEBERG_TABLE]
    table, snap = run["Arguments"]["--TABLE"], run["Arguments"]["--SNAPSHOT"]
    assert read_run_record(lab.store, table, snap) is None and CONFIG.table(table).iceberg
    lab.aws.client("glue").create_database(DatabaseInput={"Name": DATABASE})

    # When Glue runs the script: the template's default arguments under the run's, plus Glue's own
    arguments = {k: v for k, v in defaults.items() if k in ("--SHUFFLE_PARTITIONS", "--PARTITION_MB")}
    arguments |= {k: v for k, v in run["Arguments"].items() if k in RUN_ARGUMENTS}
    arguments |= {"--JOB_RUN_ID": run["Id"], "--S3_ENDPOINT_URL": lab.aws.endpoint, "--GLUE_DATABASE": DATABASE}
    done = _spark_submit(environment, script, package, defaults["--conf"], [x for kv in arguments.items() for x in kv])

    # Then it succeeded, and wrote the snapshot's outputs and, last, its accepted run record
    assert done.returncode == 0, done.stderr[-4000:]
    record = read_run_record(lab.store, table, snap)
    assert record is not None and record.status == "accepted"
    assert record.stats["rows_new"] > 0
    written = [key for key in record.outputs.values() if key]
    assert written and all(lab.store.exists(key) for key in written)
    # And its log lines are JSON with the table and snapshot on them (standard logging, no Powertools)
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    processed = [line for line in lines if line["message"] == "snapshot processed"]
    assert [(line["table"], line["snapshot"]) for line in processed] == [(table, snap)]
    assert any(line["message"] == "shuffle partitions" for line in lines)
    # And it committed the snapshot to the table's Iceberg tables, which verify finds equal to the snapshot
    lake = iceberg_lake(CONFIG, lab.store, lab.aws.client("glue"), DATABASE)
    assert lake is not None
    for name in (table, f"{table}_changes"):
        assert list(committed_snapshots(lake.catalog.load_table(lake.identifier(name)))) == [snap]
    assert any(line["message"] == "iceberg data files written" for line in lines)
    (result,) = verify(lab.store, [CONFIG.table(table)], lake)
    assert result.ok and "iceberg OK" in result.message, result.line()
