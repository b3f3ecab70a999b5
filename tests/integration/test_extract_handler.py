"""The extract Lambda handler with a real EventBridge scheduled event, against moto (in-process) and FakeKaggle.

moto's ``mock_aws`` intercepts boto3 (S3, Secrets Manager); the kaggle client's HTTP to 127.0.0.1
passes through to the fake Kaggle API (see tests/integration/kaggle/).
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from snapcdc.config import load_config
from snapcdc.extract.kaggle import KaggleDeadlineError, KaggleError, RetryPolicy
from snapcdc.lake.layout import Layout
from snapcdc.lake.store import S3Store
from snapcdc_dev.demo import load_handler
from snapcdc_dev.events import LocalLambdaContext
from snapcdc_dev.fake_kaggle import FakeKaggle, build_zip

from tests.support import BUCKET, DiskBudget, csv_bytes, object_versions

EVENTS = Path(__file__).parents[1] / "events"
DATASET = "teocalvo/teomewhy-loyalty-system"
PREFIX = "lake"
SNAP = "20260105T090000Z"  # the time of tests/events/eventbridge_schedule.json
LATER_SNAP = "20260105T130000Z"

CLIENTES = csv_bytes(
    ["idCliente", "flEmail", "qtdePontos", "DtCriacao", "DtAtualizacao"],
    [
        ["6c031199-972a-4469-9641-9f828b9d2434", 0, 260, "2025-10-10 21:38:18.975", "2025-10-10 21:38:18.975"],
        ["72ff5d2a-386e-4be0-ab65-a6a48b8148f6", 1, 4827, "2025-12-13 05:32:22.905", "2025-12-13 05:32:22.905"],
    ],
)
PRODUTOS = csv_bytes(
    ["IdProduto", "DescNomeProduto", "DescDescricaoProduto", "DescCategoriaProduto"],
    [["1", "ChatMessage", "Mensagem no chat", "chat"], ["2", "Lista de presença", "Presença; na live", "lives"]],
)
TRANSACOES = csv_bytes(
    ["IdTransacao", "IdCliente", "DtCriacao", "QtdePontos", "DescSistemaOrigem"],
    [["t1", "6c031199-972a-4469-9641-9f828b9d2434", "2025-10-10 21:40:00.000", 10, "twitch"]],
)
TRANSACAO_PRODUTO = csv_bytes(
    ["idTransacaoProduto", "IdTransacao", "IdProduto", "QtdeProduto", "vlProduto"], [["tp1", "t1", "1", 1, 10]]
)
FILES = {
    "clientes.csv": CLIENTES,
    "produtos.csv": PRODUTOS,
    "transacoes.csv": TRANSACOES,
    "transacao_produto.csv": TRANSACAO_PRODUTO,
    "database.db": b"SQLite format 3\x00 not extracted",
}
TABLES = ["clientes", "produtos", "transacoes", "transacao_produto"]
POWERTOOLS_ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME": "snapcdc-extract",
    "POWERTOOLS_METRICS_NAMESPACE": "snapcdc",
    "POWERTOOLS_TRACE_DISABLED": "true",
}


@dataclass
class World:
    handler: Any
    store: S3Store
    secrets: Any
    kaggle: FakeKaggle
    work_dir: Path

    def invoke(
        self,
        event: dict[str, Any] | None = None,
        snap_time: str | None = None,
        context: LocalLambdaContext | None = None,
    ) -> dict[str, Any]:
        payload = copy.deepcopy(event or schedule_event())
        if snap_time:
            payload["time"] = snap_time
        result: dict[str, Any] = self.handler.lambda_handler(payload, context or LocalLambdaContext("snapcdc-extract"))
        return result

    def raw_key(self, table: str, snap: str = SNAP) -> str:
        return self.store.layout.raw_key(table, snap, f"{table}.csv")

    def archive_key(self, snap: str = SNAP) -> str:
        """Where the extract streams the Kaggle download (the only object of a refused archive)."""
        return self.store.layout.archive_key(snap, "teomewhy-loyalty-system.zip")

    def body(self, key: str) -> bytes:
        body = self.store.get_bytes(key)
        assert body is not None, f"{key} was not written"
        return body

    def manifest(self, snap: str = SNAP) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(self.body(self.store.layout.manifest_key(snap)))
        return document


@functools.cache
def client(service: str) -> Any:
    """boto3 clients are slow to create; moto intercepts a client whenever a mock is active."""
    return boto3.client(service)


def schedule_event() -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / "eventbridge_schedule.json").read_text())
    return event


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def metric_values(capsys: pytest.CaptureFixture[str], name: str) -> list[float]:
    """Every value of one metric in the CloudWatch EMF documents the handler printed so far."""
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    return [value for d in documents if name in d for value in d[name]]


def assert_failed_for_good(result: dict[str, Any], capsys: pytest.CaptureFixture[str], error_type: str) -> None:
    """A permanent failure: reported (no Lambda retry) with its type and the ExtractFailed metric."""
    assert result["status"] == "failed"
    assert result["retryable"] is False
    assert result["error_type"] == error_type
    assert metric_values(capsys, "ExtractFailed") == [1.0]


@pytest.fixture(scope="module")
def handler_module():
    # Loaded once, after the environment Powertools reads at import, as in a Lambda cold start.
    with pytest.MonkeyPatch.context() as patch:
        for name, value in POWERTOOLS_ENVIRONMENT.items():
            patch.setenv(name, value)
        yield load_handler("extract")


@pytest.fixture
def world(handler_module, fake_kaggle, monkeypatch, tmp_path):
    for name, value in {
        "BUCKET_NAME": BUCKET,
        "DATA_PREFIX": PREFIX,
        "KAGGLE_ENDPOINT": fake_kaggle.endpoint,
        "WORK_DIR": str(tmp_path / "work"),
        **POWERTOOLS_ENVIRONMENT,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("PIPELINE_CONFIG", raising=False)  # the packaged config: the real dataset's tables
    monkeypatch.delenv("S3_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    # Retries without waiting (the retry policy itself is tested in tests/integration/kaggle/).
    monkeypatch.setattr(handler_module, "RetryPolicy", functools.partial(RetryPolicy, sleep=lambda _: None))
    with mock_aws():
        s3 = client("s3")
        s3.create_bucket(Bucket=BUCKET)
        secrets = client("secretsmanager")
        secret = secrets.create_secret(
            Name="snapcdc/kaggle",
            SecretString=json.dumps({"username": fake_kaggle.username, "key": fake_kaggle.key}),
        )
        monkeypatch.setenv("KAGGLE_SECRET_ARN", secret["ARN"])
        yield World(handler_module, S3Store(s3, BUCKET, Layout(PREFIX)), secrets, fake_kaggle, tmp_path / "work")


def test_first_snapshot_writes_every_table_then_the_manifest_with_checksums(world):
    # Given version 1 of the dataset on Kaggle
    world.kaggle.publish(DATASET, FILES)

    # When the scheduled event arrives
    result = world.invoke()

    # Then every configured table is under raw/<table>/snapshot=<SNAP>/, byte for byte
    assert result["status"] == "extracted"
    assert result["snapshot"] == SNAP
    assert sorted(result["uploaded"]) == sorted(TABLES)
    assert result["bytes_uploaded"] == sum(len(FILES[f"{t}.csv"]) for t in TABLES)
    for table in TABLES:
        key = world.raw_key(table)
        assert key == f"lake/raw/{table}/snapshot={SNAP}/{table}.csv"
        assert world.body(key) == FILES[f"{table}.csv"]
        # S3 stored a SHA-256 checksum of the object, and the manifest names the same digest
        head = world.store.client.head_object(Bucket=BUCKET, Key=key, ChecksumMode="ENABLED")
        assert base64.b64decode(head["ChecksumSHA256"]).hex() == sha256(FILES[f"{table}.csv"])
        assert head["Metadata"]["kaggle-version"] == "1"
    # and only those: database.db is not extracted
    assert not [k for k in world.store.list_keys("lake/raw/") if "database" in k]
    manifest = world.manifest()
    assert manifest["snapshot"] == SNAP
    assert manifest["dataset"] == DATASET
    assert manifest["version"] == 1
    assert manifest["previous_snapshot"] is None
    assert manifest["tables"]["clientes"] == {
        "file": "clientes.csv",
        "status": "uploaded",
        "key": world.raw_key("clientes"),
        "sha256": sha256(CLIENTES),
        "bytes": len(CLIENTES),
        "content_snapshot": SNAP,
        "content_key": world.raw_key("clientes"),
    }
    # and the work dir in /tmp is empty again
    assert not any((world.work_dir / "extract").rglob("*"))


def test_the_same_event_again_changes_nothing(world):
    # Given a first, complete run
    world.kaggle.publish(DATASET, FILES)
    world.invoke()
    before = object_versions(world.store)
    manifest_bytes = world.body(world.store.layout.manifest_key(SNAP))

    # When EventBridge delivers the same event again
    result = world.invoke()

    # Then the run sees its manifest and stops: same keys, same bytes, no download
    assert result["status"] == "already_done"
    assert result["version"] == 1
    assert object_versions(world.store) == before
    assert world.body(world.store.layout.manifest_key(SNAP)) == manifest_bytes
    assert world.kaggle.request_count("DownloadDataset") == 1


def test_a_retry_after_a_crash_before_the_manifest_rewrites_identical_bytes(world):
    # Given a run that wrote its raw objects but died before the manifest
    world.kaggle.publish(DATASET, FILES)
    world.invoke()
    manifest_key = world.store.layout.manifest_key(SNAP)
    manifest_bytes = world.body(manifest_key)
    raw_before = {k: world.body(k) for k in world.store.list_keys("lake/raw/") if k.endswith(".csv")}
    world.store.delete(manifest_key)
    # and the publisher released a new version in the meantime
    world.kaggle.publish(DATASET, {**FILES, "clientes.csv": CLIENTES + b"new;0;1;x;y\n"})

    # When the event is retried
    result = world.invoke()

    # Then the retry re-extracts the version of the first attempt, not the newer one
    assert result["status"] == "extracted"
    assert result["version"] == 1
    assert world.body(manifest_key) == manifest_bytes
    assert {k: world.body(k) for k in world.store.list_keys("lake/raw/") if k.endswith(".csv")} == raw_before
    assert world.kaggle.requests[-2].body.get("datasetVersionNumber") == 1


def test_an_unchanged_kaggle_version_skips_the_run(world):
    # Given a first snapshot and no new version since
    world.kaggle.publish(DATASET, FILES)
    world.invoke()
    before = object_versions(world.store)
    world.kaggle.clear_requests()

    # When the next scheduled event arrives
    result = world.invoke(snap_time="2026-01-05T13:00:00Z")

    # Then one version check, no download, nothing written (no manifest for that snapshot either)
    assert result["status"] == "skipped_unchanged"
    assert result["version"] == 1
    assert [r.rpc for r in world.kaggle.requests] == ["GetDataset"]
    assert object_versions(world.store) == before
    assert world.store.manifest_snapshots() == [SNAP]


def test_a_byte_identical_table_gets_no_raw_object(world):
    # Given a first snapshot, then a new version in which only clientes changed
    world.kaggle.publish(DATASET, FILES)
    world.invoke()
    changed = CLIENTES + b"9d1b5e8e-0000-4000-8000-000000000001;1;5;2026-01-05 10:00:00.000;2026-01-05 10:00:00.000\n"
    world.kaggle.publish(DATASET, {**FILES, "clientes.csv": changed})

    # When the next event arrives
    result = world.invoke(snap_time="2026-01-05T13:00:00Z")

    # Then only clientes is written for the new snapshot
    assert result["status"] == "extracted"
    assert result["uploaded"] == ["clientes"]
    assert sorted(result["unchanged"]) == sorted(t for t in TABLES if t != "clientes")
    new_keys = [k for k in world.store.list_keys("lake/raw/") if f"snapshot={LATER_SNAP}/" in k]
    assert new_keys == [world.archive_key(LATER_SNAP), world.raw_key("clientes", LATER_SNAP)]
    new_keys = new_keys[1:]
    assert world.body(new_keys[0]) == changed
    # and the manifest points the unchanged tables at the bytes they match
    manifest = world.manifest(LATER_SNAP)
    assert manifest["previous_snapshot"] == SNAP
    assert manifest["version"] == 2
    assert manifest["tables"]["produtos"] == {
        "file": "produtos.csv",
        "status": "unchanged",
        "key": None,
        "sha256": sha256(PRODUTOS),
        "bytes": len(PRODUTOS),
        "content_snapshot": SNAP,
        "content_key": world.raw_key("produtos", SNAP),
    }


def test_an_unchanged_table_keeps_pointing_at_its_original_bytes_across_snapshots(world):
    # Given three versions in which produtos never changes
    for number, moment in enumerate(["2026-01-05T09:00:00Z", "2026-01-05T13:00:00Z", "2026-01-05T17:00:00Z"]):
        world.kaggle.publish(DATASET, {**FILES, "clientes.csv": CLIENTES + f"v{number};0;0;a;b\n".encode()})

        # When each snapshot is extracted
        world.invoke(snap_time=moment)

    # Then the last manifest still names the first snapshot's object for produtos
    last = world.manifest("20260105T170000Z")["tables"]["produtos"]
    assert (last["status"], last["content_snapshot"]) == ("unchanged", SNAP)
    assert len([k for k in world.store.list_keys("lake/raw/produtos/")]) == 1


def test_a_table_missing_from_the_dataset_is_reported_and_the_others_written(world, capsys):
    # Given a version without transacao_produto.csv
    world.kaggle.publish(DATASET, {n: b for n, b in FILES.items() if n != "transacao_produto.csv"})

    # When
    result = world.invoke()

    # Then
    assert result["status"] == "extracted"
    assert result["missing"] == ["transacao_produto"]
    assert sorted(result["uploaded"]) == ["clientes", "produtos", "transacoes"]
    assert world.manifest()["tables"]["transacao_produto"] == {
        "file": "transacao_produto.csv",
        "status": "missing",
        "key": None,
        "sha256": None,
        "bytes": 0,
        "content_snapshot": None,
        "content_key": None,
    }
    assert not list(world.store.list_keys("lake/raw/transacao_produto/"))
    # and a TablesMissing metric names the table
    emf = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"_aws"' in line]
    missing = [m for m in emf if "TablesMissing" in m and m.get("table") == "transacao_produto"]
    assert len(missing) == 1
    assert missing[0]["TablesMissing"] == [1.0]
    assert missing[0]["service"] == "snapcdc-extract"


def test_a_late_event_older_than_the_latest_snapshot_writes_nothing(world):
    # Given a snapshot at 13:00 already extracted
    world.kaggle.publish(DATASET, FILES)
    world.invoke(snap_time="2026-01-05T13:00:00Z")
    world.kaggle.publish(DATASET, {**FILES, "clientes.csv": CLIENTES + b"x;0;0;a;b\n"})
    before = object_versions(world.store)

    # When the 09:00 event is delivered late
    result = world.invoke()

    # Then today's data is not filed under the older snapshot
    assert result["status"] == "superseded"
    assert object_versions(world.store) == before


def test_a_missing_secret_is_a_clear_failure_that_is_not_retried(world, monkeypatch):
    # Given a secret ARN that does not exist
    world.kaggle.publish(DATASET, FILES)
    arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:snapcdc/nothing-AbCdEf"
    monkeypatch.setenv("KAGGLE_SECRET_ARN", arn)

    # When
    result = world.invoke()

    # Then the error names the secret and the variable; nothing was asked of Kaggle or written
    assert result["status"] == "failed"
    assert result["retryable"] is False
    assert arn in result["error"]
    assert "ResourceNotFoundException" in result["error"]
    assert "KAGGLE_SECRET_ARN" in result["error"]
    assert world.kaggle.request_count() == 0
    assert not list(world.store.list_keys(""))


@pytest.mark.parametrize(
    ("secret", "named"),
    [
        ("not json", "must be a JSON object"),
        ('["username", "key"]', "must be a JSON object"),
        ('{"username": "someone"}', "field 'key' is missing or empty"),
        ('{"key": "k"}', "field 'username' is missing or empty"),
        ('{"username": " ", "key": "k"}', "field 'username' is missing or empty"),
    ],
)
def test_a_malformed_secret_names_the_secret_and_the_field(world, monkeypatch, secret, named):
    # Given
    arn = world.secrets.create_secret(Name="snapcdc/bad", SecretString=secret)["ARN"]
    monkeypatch.setenv("KAGGLE_SECRET_ARN", arn)

    # When
    result = world.invoke()

    # Then
    assert result["status"] == "failed"
    assert result["error_type"] == "KaggleSecretError"
    assert arn in result["error"]
    assert named in result["error"]


def test_wrong_kaggle_credentials_fail_without_retrying(world, monkeypatch):
    # Given a secret with a key Kaggle refuses
    world.kaggle.publish(DATASET, FILES)
    arn = world.secrets.create_secret(
        Name="snapcdc/wrong", SecretString=json.dumps({"username": world.kaggle.username, "key": "revoked"})
    )["ARN"]
    monkeypatch.setenv("KAGGLE_SECRET_ARN", arn)

    # When
    result = world.invoke()

    # Then
    assert result["status"] == "failed"
    assert result["error_type"] == "KaggleAuthError"
    assert "HTTP 401" in result["error"]
    assert world.kaggle.request_count() == 1


def test_a_hostile_archive_is_refused_and_nothing_is_written(world):
    # Given a version whose zip tries to write outside the extraction folder
    world.kaggle.publish_zip(DATASET, build_zip({**FILES, "../clientes.csv": b"pwned"}))

    # When
    result = world.invoke()

    # Then
    assert result["status"] == "failed"
    assert result["error_type"] == "UnsafeArchiveError"
    assert "'../clientes.csv'" in result["error"]
    assert list(world.store.list_keys("")) == [world.archive_key()]  # the download itself, nothing else
    assert not any((world.work_dir / "extract").rglob("*"))
    assert not (world.work_dir / "clientes.csv").exists()


def test_a_kaggle_outage_raises_so_lambda_retries_the_event_later(world):
    # Given Kaggle answering 503 to everything
    world.kaggle.publish(DATASET, FILES)
    world.kaggle.fail_next(503, times=100)

    # When / Then
    with pytest.raises(KaggleError, match="after 4 attempts"):
        world.invoke()
    assert world.kaggle.request_count() == 4
    assert not list(world.store.list_keys(""))


def test_an_event_without_a_time_is_refused(world):
    # Given
    event = schedule_event()
    del event["time"]

    # When
    result = world.invoke(event)

    # Then
    assert result["status"] == "failed"
    assert result["error_type"] == "EventError"


def test_a_table_added_to_the_config_is_extracted_even_if_the_version_is_unchanged(world, monkeypatch, tmp_path):
    # Given a first snapshot made with a config of three tables
    world.kaggle.publish(DATASET, FILES)
    packaged = json.loads(load_config().model_dump_json())
    smaller = {**packaged, "tables": [t for t in packaged["tables"] if t["name"] != "transacao_produto"]}
    config_path = tmp_path / "pipeline.json"
    config_path.write_text(json.dumps(smaller))
    monkeypatch.setenv("PIPELINE_CONFIG", str(config_path))
    world.invoke()

    # When the fourth table is configured and the next event comes, with no new Kaggle version
    monkeypatch.delenv("PIPELINE_CONFIG")
    result = world.invoke(snap_time="2026-01-05T13:00:00Z")

    # Then the new table is extracted and the three others are recognised as unchanged
    assert result["status"] == "extracted"
    assert result["uploaded"] == ["transacao_produto"]
    assert sorted(result["unchanged"]) == ["clientes", "produtos", "transacoes"]


def test_an_orphan_raw_object_from_a_run_that_died_is_the_comparison_base(world):
    # Given snapshot 09:00 (v1), then a 13:00 run (v2, clientes changed) that died before its manifest
    world.kaggle.publish(DATASET, FILES)
    world.invoke()
    world.kaggle.publish(DATASET, {**FILES, "clientes.csv": CLIENTES + b"x;0;0;a;b\n"})
    world.invoke(snap_time="2026-01-05T13:00:00Z")
    world.store.delete(world.store.layout.manifest_key(LATER_SNAP))
    # and v3 brings clientes back to the 09:00 content
    world.kaggle.publish(DATASET, FILES)

    # When the 17:00 snapshot is extracted
    result = world.invoke(snap_time="2026-01-05T17:00:00Z")

    # Then clientes is written again: it differs from the newest raw object, which the CDC has seen
    assert result["status"] == "extracted"
    assert result["previous_snapshot"] == SNAP
    assert result["uploaded"] == ["clientes"]
    assert world.body(world.raw_key("clientes", "20260105T170000Z")) == CLIENTES


# -- the Kaggle deadline, the retry settings, the disk ---------------------------------------------
def test_a_stalled_kaggle_fails_at_the_deadline_with_its_metric_before_lambda_would_kill_the_function(
    world, monkeypatch, capsys
):
    # Given Kaggle holding every request for a minute, a read timeout of two minutes (the default),
    # and a function with 5 s left of which 2 s are kept for the uploads
    world.kaggle.publish(DATASET, FILES)
    world.kaggle.delay_next(60.0, times=100)
    monkeypatch.setenv("UPLOAD_MARGIN_SECONDS", "2")
    context = LocalLambdaContext("snapcdc-extract", timeout_seconds=5)

    # When / Then the handler raises (so Lambda retries the event later) a clear error
    with pytest.raises(KaggleDeadlineError) as failure:
        world.invoke(context=context)
    message = str(failure.value)
    assert message.startswith(f"Kaggle GetDataset {DATASET} stopped at its deadline: attempt 1 was cut off")
    assert "minus UPLOAD_MARGIN_SECONDS=2 kept for the S3 uploads" in message
    # before the invocation ran out of time: the function was not killed
    assert context.get_remaining_time_in_millis() > 0
    # with its metric, and nothing written
    assert metric_values(capsys, "ExtractFailed") == [1.0]
    assert not list(world.store.list_keys(""))


def test_a_margin_that_leaves_kaggle_no_time_is_a_clear_configuration_failure(world, capsys):
    # Given a function with 60 s left and the default margin of 120 s for the uploads
    world.kaggle.publish(DATASET, FILES)

    # When
    result = world.invoke(context=LocalLambdaContext("snapcdc-extract", timeout_seconds=60))

    # Then it fails without a retry, naming the settings to change, and asks nothing of Kaggle
    assert_failed_for_good(result, capsys, "TimeBudgetError")
    assert "not more than UPLOAD_MARGIN_SECONDS=120" in result["error"]
    assert "raise the function timeout (extract_timeout_minutes) or lower UPLOAD_MARGIN_SECONDS" in result["error"]
    assert world.kaggle.request_count() == 0


def test_the_kaggle_attempt_budget_is_a_setting_of_the_function(world, monkeypatch):
    # Given Kaggle answering 503 to everything, and KAGGLE_MAX_ATTEMPTS=2
    world.kaggle.publish(DATASET, FILES)
    world.kaggle.fail_next(503, times=100)
    monkeypatch.setenv("KAGGLE_MAX_ATTEMPTS", "2")

    # When / Then
    with pytest.raises(KaggleError, match="after 2 attempts"):
        world.invoke()
    assert world.kaggle.request_count() == 2


@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("KAGGLE_MAX_ATTEMPTS", "0", "KAGGLE_MAX_ATTEMPTS: Input should be greater than or equal to 1"),
        (
            "KAGGLE_READ_TIMEOUT_SECONDS",
            "soon",
            "KAGGLE_READ_TIMEOUT_SECONDS: Input should be a valid number, unable to parse string as a number",
        ),
        ("UPLOAD_MARGIN_SECONDS", "-1", "UPLOAD_MARGIN_SECONDS: Input should be greater than or equal to 0"),
    ],
)
def test_an_invalid_kaggle_setting_is_named(world, monkeypatch, name, value, named):
    # Given
    monkeypatch.setenv(name, value)

    # When
    result = world.invoke()

    # Then
    assert result["status"] == "failed"
    assert result["error_type"] == "SettingsError"
    assert result["error"] == f"invalid Lambda environment: {named}"


def test_an_archive_larger_than_the_functions_disk_is_extracted(world):
    # Given a version of a few MB and a work dir (the function's /tmp) where nothing can be written
    big = {
        **FILES,
        "transacoes.csv": TRANSACOES + b"".join(b"t%d;c;2025-10-10 21:40:00.000;1;x\n" % i for i in range(150_000)),
    }
    world.kaggle.publish(DATASET, big)

    # When
    with DiskBudget(world.work_dir) as disk:
        result = world.invoke()

    # Then the extract succeeds through the real kaggle client, every table byte for byte
    assert result["status"] == "extracted", result
    for table in TABLES:
        assert world.body(world.raw_key(table)) == big[f"{table}.csv"]
    assert len(big["transacoes.csv"]) > 5 * 1024 * 1024
    # and nothing was written to the disk
    assert disk.refused == []
    assert not [p for p in world.work_dir.rglob("*") if p.is_file()]
