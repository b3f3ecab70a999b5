"""``snapcdc demo``: the whole pipeline on one machine, with nothing to configure.

An embedded S3 (moto server on 127.0.0.1), a generated sample of the loyalty dataset served to the
real kaggle client by a local fake Kaggle API, several snapshots with changes (and a few bad rows),
the real extract and CDC handlers invoked with real EventBridge and S3 event payloads, a summary per
table and snapshot, ``verify`` as the check, and the bucket copied to a local folder.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TextIO

from snapcdc.lake.layout import Layout, snapshot_id

from snapcdc_dev import iceberg_demo
from snapcdc_dev.demo_folder import DemoFolder, DemoFolderError
from snapcdc_dev.embedded_aws import EmbeddedAws, embedded_aws, patched_environ
from snapcdc_dev.events import LocalLambdaContext, s3_object_created_event, scheduled_event
from snapcdc_dev.fake_kaggle import FakeKaggle
from snapcdc_dev.sample_data import LoyaltyDataset

if TYPE_CHECKING:
    from snapcdc.lake.records import RunRecord

__all__ = ["DemoFolderError", "run_demo"]

BUCKET = "snapcdc-demo-data"
FIRST_RUN = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
REPO_ROOT = Path(__file__).resolve().parents[2]


def load_handler(function: str) -> ModuleType:
    """Import ``lambdas/<function>/handler.py`` as Lambda would (it is not part of the package)."""
    path = REPO_ROOT / "lambdas" / function / "handler.py"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: run the demo from a snapcdc checkout (pip install -e .)")
    spec = importlib.util.spec_from_file_location(f"snapcdc_{function}_handler", path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def local_stack(
    work_dir: Path, dataset: str, log: TextIO, data_prefix: str = "", iceberg: bool = False
) -> Iterator[tuple[EmbeddedAws, FakeKaggle]]:
    """Embedded AWS + fake Kaggle + the environment the Lambdas get from CDK in AWS (``iceberg``: and
    a Glue database for the Iceberg tables, docs/iceberg.md)."""
    with embedded_aws() as aws, FakeKaggle() as kaggle:
        aws.client("s3").create_bucket(Bucket=BUCKET)
        extra = iceberg_demo.create_database(aws) if iceberg else {}
        secret = aws.client("secretsmanager").create_secret(
            Name="snapcdc/kaggle", SecretString=json.dumps({"username": kaggle.username, "key": kaggle.key})
        )
        environment = {
            "BUCKET_NAME": BUCKET,
            "DATA_PREFIX": data_prefix,
            "KAGGLE_SECRET_ARN": secret["ARN"],
            "KAGGLE_ENDPOINT": kaggle.endpoint,
            "WORK_DIR": str(work_dir),
            "POWERTOOLS_SERVICE_NAME": "snapcdc",
            "POWERTOOLS_METRICS_NAMESPACE": "snapcdc",
            "POWERTOOLS_TRACE_DISABLED": "true",
            **extra,
        }
        with patched_environ(environment), contextlib.redirect_stdout(log), _logs_to(log):
            yield aws, kaggle


@contextlib.contextmanager
def _logs_to(log: TextIO) -> Iterator[None]:
    """The handlers' JSON log lines into ``log`` (the console script points them at stderr)."""
    from snapcdc.observability import logger

    handler = logger.registered_handler
    if not isinstance(handler, logging.StreamHandler):
        yield
        return
    previous = handler.setStream(log)
    try:
        yield
    finally:
        handler.setStream(previous)


def _with_bad_rows(files: dict[str, bytes]) -> dict[str, bytes]:
    """A duplicated client id and a transaction without an id: both must land in quarantine."""
    clientes = files["clientes.csv"].decode("utf-8").splitlines()
    transacoes = files["transacoes.csv"].decode("utf-8").splitlines()
    clientes.append(clientes[1].replace(";0;", ";1;", 1))
    transacoes.append(";" + transacoes[1].split(";", 1)[1])
    return {
        **files,
        "clientes.csv": ("\n".join(clientes) + "\n").encode(),
        "transacoes.csv": ("\n".join(transacoes) + "\n").encode(),
    }


def run_pipeline_cycle(aws: EmbeddedAws, moment: datetime, layout: Layout) -> dict[str, Any]:
    """One scheduled run: the extract handler, then the CDC handler once per new raw CSV (as S3 does)."""
    extract, cdc = load_handler("extract"), load_handler("cdc")
    summary: dict[str, Any] = extract.lambda_handler(scheduled_event(moment), LocalLambdaContext("snapcdc-extract"))
    s3 = aws.client("s3")
    prefix = layout.key("raw/")
    snap = snapshot_id(moment)
    listing = s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
    for item in listing:
        if f"/snapshot={snap}/" in item["Key"] and item["Key"].endswith(".csv"):
            event = s3_object_created_event(BUCKET, [(item["Key"], item["Size"], item["ETag"])])
            cdc.lambda_handler(event, LocalLambdaContext("snapcdc-cdc", memory_mb=3008))
    return summary


def copy_bucket(aws: EmbeddedAws, folder: DemoFolder) -> int:
    s3 = aws.client("s3")
    count = 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for item in page.get("Contents", []):
            s3.download_file(BUCKET, item["Key"], str(folder.file(item["Key"])))
            count += 1
    return count


def _progress(number: int, total: int, snap: str, extract: dict[str, Any]) -> str:
    uploaded = ", ".join(extract.get("uploaded", [])) or "none"
    status = extract.get("status")
    return f"  [{number}/{total}] snapshot {snap}: extract {status}, uploaded {uploaded}; CDC run on each raw CSV"


def summary_table(runs: list[RunRecord]) -> str:
    header = f"{'table':<18} {'snapshot':<17} {'status':<9} {'kind':<9} {'ins':>6} {'upd':>6} {'del':>6} "
    header += f"{'quar':>5} {'no-date-bump':>12} {'rows':>7} {'sec':>6}"
    lines = [header, "-" * len(header)]
    for run in sorted(runs, key=lambda r: (r.table, r.snapshot)):
        stats = run.stats
        kind = "full-load" if run.keys("full_load") else ("cdc" if run.keys("cdc") else "-")
        lines.append(
            f"{run.table:<18} {run.snapshot:<17} {run.status:<9} {kind:<9} "
            f"{stats.get('inserts', 0):>6} {stats.get('updates', 0):>6} {stats.get('deletes', 0):>6} "
            f"{stats.get('quarantined', 0):>5} {stats.get('updates_without_date_bump', 0):>12} "
            f"{stats.get('rows_new', 0):>7} {run.seconds:>6.2f}"
        )
    return "\n".join(lines)


def feed_summary(store: Any, table: Any) -> list[str]:
    """One line per change feed the table enables: where it is and what it holds."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from snapcdc.cdc import feeds
    from snapcdc.ops.verify import scd2_history

    layout, lines = store.layout, []

    def read(key: str) -> pa.Table:
        return pq.read_table(pa.BufferReader(store.get_bytes(key)))

    if table.outputs.changelog:
        keys = list(store.list_keys(layout.changelog_prefix(table.name)))
        rows = pa.concat_tables([read(k) for k in keys], promote_options="permissive")
        versions = len({Layout.whole_key(k) for k in keys})  # a snapshot's file may be N parts
        counts = {str(k["values"]): int(k["counts"]) for k in pc.value_counts(rows[feeds.CHANGE_TYPE]).to_pylist()}
        lines.append(
            f"changelog {layout.changelog_prefix(table.name)}: {len(keys)} files, commit versions 1..{versions}, "
            + ", ".join(
                f"{kind} {counts.get(kind, 0)}"
                for kind in (feeds.INSERT, feeds.DELETE, feeds.PREIMAGE, feeds.POSTIMAGE)
            )
        )
    if table.outputs.scd2 is not None:
        history = scd2_history(store, table.name)
        current = int(pc.sum(history[feeds.IS_CURRENT]).as_py() or 0)
        lines.append(
            f"scd2      {layout.scd2_prefix(table.name)}: {history.num_rows} versions, {current} current, "
            f"{history.num_rows - current} closed"
        )
    if table.outputs.dms:
        keys = sorted(store.list_keys(layout.dms_prefix(table.name)))
        names = sorted({Layout.whole_key(k).rsplit("/", 1)[1] for k in keys})
        lines.append(f"dms       {layout.dms_prefix(table.name)}: {', '.join(names)} (Op first, {feeds.DMS_TIMESTAMP})")
    return lines


def run_demo(
    out: Path,
    snapshots: int = 4,
    seed: int = 42,
    serve: bool = False,
    wait: Callable[[], None] | None = None,
) -> int:
    """Run the demo; returns a process exit code (0 when ``verify`` passes for every table).

    ``out`` must be new, empty, or made by an earlier demo (:mod:`snapcdc_dev.demo_folder`): it
    raises :class:`DemoFolderError` before anything is written otherwise. ``serve``: keep the
    embedded S3 running after the summary, print the environment that points the CLI and DuckDB at
    it, and stop when ``wait`` returns (default: Ctrl-C)."""
    from snapcdc.cdc.iceberg.sync import iceberg_lake
    from snapcdc.config import load_config
    from snapcdc.lake.ledger import processed_snapshots, read_run_record
    from snapcdc.lake.store import S3Store
    from snapcdc.ops.verify import verify

    config = load_config()
    layout = Layout()
    started = time.perf_counter()
    folder = DemoFolder.claim(out, cwd=Path.cwd(), home=Path.home(), checkout=REPO_ROOT)
    dataset = LoyaltyDataset(seed=seed)
    console = sys.stdout  # the handlers' JSON logs and metrics go to the log file, progress here
    print(f"snapcdc demo: {snapshots} snapshots of {config.dataset} (generated sample), embedded S3 on 127.0.0.1")
    with (
        tempfile.TemporaryDirectory(prefix="snapcdc-demo-") as work,
        folder.file("logs/lambda.jsonl").open("w") as log,
        local_stack(Path(work), config.dataset, log, iceberg=True) as (aws, kaggle),
    ):
        for index in range(snapshots):
            if index:
                dataset.advance()
            files = dataset.files()
            kaggle.publish(config.dataset, _with_bad_rows(files) if index == snapshots - 1 else files)
            moment = FIRST_RUN + timedelta(hours=4 * index)
            extract_summary = run_pipeline_cycle(aws, moment, layout)
            print(_progress(index + 1, snapshots, snapshot_id(moment), extract_summary), file=console, flush=True)
        store = S3Store(aws.client("s3"), BUCKET, layout)
        runs = [
            read_run_record(store, table.name, snap)
            for table in config.tables
            for snap in processed_snapshots(store, table.name)
        ]
        lake = iceberg_lake(config, store, aws.client("glue"), iceberg_demo.DATABASE)
        results = verify(store, list(config.tables), lake)
        feed_lines = [line for table in config.tables for line in feed_summary(store, table)]
        feed_lines += iceberg_demo.time_travel(aws, store, config)
        copied = copy_bucket(aws, folder)
        folder.seal()
        print(summary_table([r for r in runs if r is not None]), file=console)
        print(file=console)
        for result in results:
            print(result.line(), file=console)
        if feed_lines:
            print(file=console)
            print("\n".join(feed_lines), file=console)
        print(
            f"\n{copied} objects copied to {out}/ (raw/, full-load/, cdc/, snapshots/, quarantine/, _runs/, "
            "changelog/, scd2/, dms/, iceberg/); ",
            end="",
            file=console,
        )
        print(f"Lambda logs in {out}/logs/lambda.jsonl; {time.perf_counter() - started:.1f} s", file=console)
        if serve:
            print(serve_instructions(aws.endpoint), file=console, flush=True)
            (wait or _until_interrupted)()
    return 0 if all(r.ok for r in results) else 1


def serve_instructions(endpoint: str) -> str:
    """What to paste into another shell to use the embedded S3: two lines of environment, then the
    commands and DuckDB's S3 settings."""
    host = endpoint.removeprefix("http://")
    return "\n".join(
        [
            "",
            f"The embedded S3 stays up at {endpoint} (bucket {BUCKET}) until Ctrl-C. In another shell:",
            "",
            f"export AWS_ENDPOINT_URL={endpoint}",
            "export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_DEFAULT_REGION=us-east-1",
            "",
            f"snapcdc verify --bucket {BUCKET}",
            f"snapcdc replay --bucket {BUCKET} --table clientes",
            f"snapcdc ingest --bucket {BUCKET} --table clientes --snapshot 20260201T000000Z clientes.csv",
            "",
            "DuckDB (extension httpfs): CREATE SECRET demo (TYPE s3, KEY_ID 'testing', SECRET 'testing', "
            f"REGION 'us-east-1', ENDPOINT '{host}', URL_STYLE 'path', USE_SSL false);",
            f"  then e.g. SELECT count(*) FROM 's3://{BUCKET}/cdc/clientes/*.parquet';",  # noqa: S608 - printed, not run
        ]
    )


def _until_interrupted() -> None:
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(3600)
