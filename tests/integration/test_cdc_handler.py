"""The CDC Lambda handler with a real S3 notification payload, against moto (in-process)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import boto3
import pytest
from snapcdc.config import load_config
from snapcdc.lake.layout import Layout
from snapcdc.lake.store import S3Store
from snapcdc.settings import CdcSettings, SettingsError, load_settings
from snapcdc_dev.demo import load_handler
from snapcdc_dev.events import LocalLambdaContext

from tests.support import BUCKET, csv_bytes, object_versions, put_raw

EVENTS = Path(__file__).parents[1] / "events"
SNAP = "20260101T000000Z"
COLUMNS = [
    "idCliente",
    "flEmail",
    "flTwitch",
    "flYouTube",
    "flBlueSky",
    "flInstagram",
    "qtdePontos",
    "DtCriacao",
    "DtAtualizacao",
]
ROWS = [
    ["6c031199-972a-4469-9641-9f828b9d2434", 0, 1, 1, 0, 0, 260, "2025-10-10 21:38:18.975", "2025-10-10 21:38:18.975"],
    ["72ff5d2a-386e-4be0-ab65-a6a48b8148f6", 1, 1, 1, 0, 0, 4827, "2025-12-13 05:32:22.905", "2025-12-13 05:32:22.905"],
]


@pytest.fixture
def environment(monkeypatch, tmp_path, s3_client):
    for name, value in {  # the AWS test credentials are the root conftest's
        "BUCKET_NAME": BUCKET,
        "DATA_PREFIX": "",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_SERVICE_NAME": "snapcdc",
        "TMPDIR": str(tmp_path),
    }.items():
        monkeypatch.setenv(name, value)
    return S3Store(s3_client, BUCKET, Layout())


def _event():
    event = json.loads((EVENTS / "s3_object_created.json").read_text())
    event["Records"][0]["s3"]["bucket"]["name"] = BUCKET
    return event


def test_cdc_handler_processes_the_object_named_in_the_event(environment, capsys):
    # Given the raw CSV that the event announces (its key is URL-encoded in the payload)
    store = environment
    put_raw(store, load_config().table("clientes"), SNAP, csv_bytes(COLUMNS, ROWS))
    handler = load_handler("cdc")
    # When
    result = handler.lambda_handler(_event(), LocalLambdaContext("snapcdc-cdc"))
    # Then
    assert result["processed"][0]["table"] == "clientes"
    assert result["processed"][0]["status"] == "accepted"
    assert store.exists("full-load/clientes/clientes.parquet")
    assert store.exists(f"_runs/clientes/snapshot={SNAP}.json")
    emitted = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    names = {m["Name"] for blob in emitted for d in blob["_aws"]["CloudWatchMetrics"] for m in d["Metrics"]}
    assert {"RowsRead", "Inserts", "Quarantined", "SnapshotsProcessed"} <= names


def test_cdc_handler_twice_with_the_same_event_changes_nothing(environment):
    # Given
    store = environment
    put_raw(store, load_config().table("clientes"), SNAP, csv_bytes(COLUMNS, ROWS))
    handler = load_handler("cdc")
    handler.lambda_handler(_event(), LocalLambdaContext("snapcdc-cdc"))
    before = object_versions(store)
    # When S3 delivers the same notification again
    result = handler.lambda_handler(copy.deepcopy(_event()), LocalLambdaContext("snapcdc-cdc"))
    # Then
    assert result["processed"] == [] and result["already_done"] == [f"clientes@{SNAP}"]
    assert object_versions(store) == before


def test_cdc_handler_raises_for_a_missing_object_so_lambda_retries(environment):
    # Given an event whose object is not there
    handler = load_handler("cdc")
    # When / Then
    with pytest.raises(handler.CdcBatchError, match="clientes"):
        handler.lambda_handler(_event(), LocalLambdaContext("snapcdc-cdc"))


def test_cdc_handler_with_a_glue_database_keeps_the_tables_current(environment, monkeypatch, tmp_path):
    # Given GLUE_DATABASE set (as the stack sets it) and the database the stack creates; the packaged
    # config with its Iceberg tables off (pyiceberg writes through pyarrow's S3 client, which moto's
    # in-process mock does not catch: the Iceberg path is tested on the moto server, tests/iceberg)
    monkeypatch.setenv("GLUE_DATABASE", "snapcdc")
    packaged = json.loads(resources.files("snapcdc").joinpath("pipeline.json").read_text(encoding="utf-8"))
    packaged["tables"] = [{**table, "iceberg": False} for table in packaged["tables"]]
    (tmp_path / "pipeline.json").write_text(json.dumps(packaged), encoding="utf-8")
    monkeypatch.setenv("PIPELINE_CONFIG", str(tmp_path / "pipeline.json"))
    glue = boto3.client("glue")
    glue.create_database(DatabaseInput={"Name": "snapcdc"})
    store = environment
    put_raw(store, load_config().table("clientes"), SNAP, csv_bytes(COLUMNS, ROWS))
    # When
    load_handler("cdc").lambda_handler(_event(), LocalLambdaContext("snapcdc-cdc"))
    # Then the table's three Glue tables exist, typed as the Parquet files, and the run record says so
    names = {t["Name"] for t in glue.get_tables(DatabaseName="snapcdc")["TableList"]}
    # (and one per change feed the packaged config enables on clientes)
    feeds = {f"clientes_{feed}" for feed in ("changelog", "scd2", "dms")}
    assert names == {"clientes_cdc", "clientes_full_load", "clientes_snapshots", *feeds}
    columns = glue.get_table(DatabaseName="snapcdc", Name="clientes_full_load")["Table"]["StorageDescriptor"]["Columns"]
    assert {c["Name"]: c["Type"] for c in columns}["qtdepontos"] == "bigint"
    record = json.loads(store.get_bytes(f"_runs/clientes/snapshot={SNAP}.json"))
    assert [c["action"] for c in record["catalog_changes"]] == ["created"] * 6


def test_cdc_handler_without_a_glue_database_does_not_touch_glue(environment, monkeypatch):
    # Given no GLUE_DATABASE (local runs, the demo)
    monkeypatch.delenv("GLUE_DATABASE", raising=False)
    store = environment
    put_raw(store, load_config().table("clientes"), SNAP, csv_bytes(COLUMNS, ROWS))
    # When
    result = load_handler("cdc").lambda_handler(_event(), LocalLambdaContext("snapcdc-cdc"))
    # Then the snapshot is processed, no Glue database or table exists, the run record lists no catalog change
    assert result["processed"][0]["status"] == "accepted"
    assert boto3.client("glue").get_databases()["DatabaseList"] == []
    assert "catalog_changes" not in json.loads(store.get_bytes(f"_runs/clientes/snapshot={SNAP}.json"))


@pytest.mark.parametrize(("environ", "expected"), [({}, None), ({"GLUE_DATABASE": "snapcdc"}, "snapcdc")])
def test_glue_database_is_optional_in_the_cdc_settings(environ, expected):
    # Given / When
    settings = load_settings(CdcSettings, {"BUCKET_NAME": BUCKET, **environ})
    # Then
    assert settings.glue_database == expected


def test_an_empty_glue_database_is_a_settings_error_naming_it():
    with pytest.raises(SettingsError, match="GLUE_DATABASE"):
        load_settings(CdcSettings, {"BUCKET_NAME": BUCKET, "GLUE_DATABASE": ""})


def _event_for(*keys: str) -> dict:
    template = _event()
    event = {"Records": []}
    for key in keys:
        record = copy.deepcopy(template["Records"][0])
        record["s3"]["object"]["key"] = key.replace("=", "%3D")
        event["Records"].append(record)
    return event


def _healthy_produtos(store: S3Store) -> str:
    produtos = load_config().table("produtos")
    return put_raw(store, produtos, SNAP, csv_bytes(["IdProduto", "DescNomeProduto"], [["1", "Café"]]))


def test_cdc_handler_reports_a_permanent_failure_without_a_retry_and_other_tables_go_on(environment, capsys):
    # Given clientes' ledger holding a run record that cannot be read (a retry reads the same bytes)
    store = environment
    clientes = put_raw(store, load_config().table("clientes"), SNAP, csv_bytes(COLUMNS, ROWS))
    store.put_bytes("_runs/clientes/snapshot=20251231T000000Z.json", b"{not json", "application/json")
    produtos = _healthy_produtos(store)
    handler = load_handler("cdc")
    # When
    result = handler.lambda_handler(_event_for(clientes, produtos), LocalLambdaContext("snapcdc-cdc"))
    # Then the handler returns (Lambda does not retry), naming the table and the error's kind
    assert list(result["permanent_failures"]) == ["clientes"]
    assert result["permanent_failures"]["clientes"].startswith("RecordError: ")
    assert result["failures"] == {}
    assert [(p["table"], p["status"]) for p in result["processed"]] == [("produtos", "accepted")]
    assert not store.exists(f"_runs/clientes/snapshot={SNAP}.json")
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    failed = [d["CdcFailed"] for d in documents if "CdcFailed" in d]
    assert failed in ([1.0], [[1.0]])


def test_cdc_handler_raises_a_transient_failure_after_the_other_tables_ran(environment):
    # Given an event naming a clientes object that is not there (yet), and a healthy produtos
    store = environment
    missing = store.layout.raw_key("clientes", SNAP, "clientes.csv")
    produtos = _healthy_produtos(store)
    handler = load_handler("cdc")
    # When / Then the handler raises, so Lambda retries the event
    with pytest.raises(handler.CdcBatchError, match="clientes"):
        handler.lambda_handler(_event_for(missing, produtos), LocalLambdaContext("snapcdc-cdc"))
    # and produtos was processed before it did
    assert store.exists(f"_runs/produtos/snapshot={SNAP}.json")


# A fresh interpreter (pyarrow imports pandas, present in the CDC function's layer, the first time it
# converts a Python or numpy object the pandas-aware way, or loads its query engine for a join or a
# read_table: 0.3-0.4 s of CPU in every cold start that takes such a path).
TWO_RUNS_IN_A_FRESH_PROCESS = """
import json, sys
from moto import mock_aws
with mock_aws():
    import boto3
    from snapcdc.config import load_config
    from snapcdc.lake.layout import Layout
    from snapcdc.lake.store import S3Store
    from snapcdc_dev.demo import load_handler
    from snapcdc_dev.events import LocalLambdaContext
    from tests.support import BUCKET, put_raw

    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    boto3.client("glue").create_database(DatabaseInput={"Name": "snapcdc"})
    store, table = S3Store(s3, BUCKET, Layout()), load_config().table(sys.argv[2])
    handler = load_handler("cdc")
    statuses = []
    for snap, body in json.loads(sys.argv[1]):
        key = put_raw(store, table, snap, body.encode())
        event = {"Records": [{"eventSource": "aws:s3", "eventName": "ObjectCreated:Put",
                              "s3": {"bucket": {"name": BUCKET}, "object": {"key": key.replace("=", "%3D")}}}]}
        processed = handler.lambda_handler(event, LocalLambdaContext("snapcdc-cdc"))["processed"][0]
        statuses.append([processed["status"], processed["inserts"], processed["updates"], processed["deletes"]])
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    print(json.dumps({"statuses": statuses, "keys": keys, "pandas": "pandas" in sys.modules,
                      "pyiceberg": "pyiceberg" in sys.modules}))
"""


def _runs_in_a_fresh_process(table: str, snapshots: list[tuple[str, bytes]]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", TWO_RUNS_IN_A_FRESH_PROCESS, json.dumps([[s, b.decode()] for s, b in snapshots]), table],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=Path(__file__).parents[2],
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    outcome: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return outcome


def test_a_cdc_run_with_every_feed_does_not_import_pandas(environment, monkeypatch, tmp_path):
    # Given the packaged config (changelog, SCD2 and DMS feeds on clientes; Iceberg off, as in the Glue
    # test above), a Glue database, and two snapshots: the first, then an insert, an update and a delete
    monkeypatch.setenv("GLUE_DATABASE", "snapcdc")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    packaged = json.loads(resources.files("snapcdc").joinpath("pipeline.json").read_text(encoding="utf-8"))
    packaged["tables"] = [{**table, "iceberg": False} for table in packaged["tables"]]
    (tmp_path / "pipeline.json").write_text(json.dumps(packaged), encoding="utf-8")
    monkeypatch.setenv("PIPELINE_CONFIG", str(tmp_path / "pipeline.json"))
    changed = [*ROWS[0][:6], 999, ROWS[0][7], "2025-12-20 00:00:00.000"]
    stamp = "2025-12-21 00:00:00.000"
    added = ["00000000-0000-4000-8000-000000000001", 0, 0, 0, 0, 0, 1, stamp, stamp]
    snapshots = [(SNAP, csv_bytes(COLUMNS, ROWS)), ("20260102T000000Z", csv_bytes(COLUMNS, [changed, added]))]
    # When the CDC handler runs both in a fresh interpreter
    outcome = _runs_in_a_fresh_process("clientes", snapshots)
    # Then both were accepted with their changes, every feed was written (SCD2 closed a version), and
    # pandas was never imported
    assert outcome["statuses"] == [["accepted", 2, 0, 0], ["accepted", 1, 1, 1]]
    for prefix in ("changelog/clientes/", "dms/clientes/", "scd2/clientes/clientes_closed_", "cdc/clientes/"):
        assert any(key.startswith(prefix) for key in outcome["keys"]), prefix
    assert outcome["pandas"] is False


def test_an_event_of_a_table_without_iceberg_does_not_import_pyiceberg(environment, monkeypatch):
    # Given the packaged config, whose clientes keeps Iceberg tables and whose produtos does not, and a
    # Glue database for them (as deployed)
    monkeypatch.setenv("GLUE_DATABASE", "snapcdc")
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    assert load_config().table("clientes").iceberg and not load_config().table("produtos").iceberg
    # When the CDC handler runs a produtos snapshot in a fresh interpreter
    outcome = _runs_in_a_fresh_process(
        "produtos", [(SNAP, csv_bytes(["IdProduto", "DescNomeProduto"], [["1", "Café"]]))]
    )
    # Then it was accepted, and neither pyiceberg nor pandas (which pyiceberg's pyarrow.dataset imports:
    # about 0.6 s of CPU together) was imported
    assert outcome["statuses"] == [["accepted", 1, 0, 0]]
    assert outcome["pyiceberg"] is False
    assert outcome["pandas"] is False
