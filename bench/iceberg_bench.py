"""What one Iceberg commit costs: bytes written and requests, at 1M and 10M rows (docs/iceberg.md,
"How rows get there, and what a run costs").

One table (a key, four columns), the first snapshot committed, then the measured run: the next
snapshot with 1% of its rows updated, committed to ``<table>`` (the state replaced by one new data
file) and ``<table>_changes`` (the change set appended). Also measured: a run whose change set is
empty (no data file). A counting WSGI layer in front of the moto server records every request
pyiceberg (pyarrow's S3 client) and boto3 make: method, service, bytes in the body.

Usage: ``python -m bench.iceberg_bench --rows 1000000 --rows 10000000``.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from snapcdc.cdc.iceberg.catalog import glue_catalog
from snapcdc.cdc.iceberg.sync import IcebergLake, SnapshotRows
from snapcdc.lake.layout import Layout
from snapcdc.lake.store import S3Store
from snapcdc_dev.embedded_aws import EmbeddedAws, patched_environ

ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


class Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: collections.Counter[str] = collections.Counter()
        self.bytes_in: collections.Counter[str] = collections.Counter()

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.bytes_in.clear()

    def wrap(self, app: Any) -> Any:
        def counted(environ: dict[str, Any], start_response: Any) -> Any:
            target = environ.get("HTTP_X_AMZ_TARGET", "")
            service = target.split(".")[-1] if target else "s3"
            kind = f"glue:{service}" if target.startswith("AWSGlue") else f"s3:{environ['REQUEST_METHOD']}"
            if kind == "s3:GET" and "list-type" in environ.get("QUERY_STRING", ""):
                kind = "s3:LIST"
            size = int(environ.get("CONTENT_LENGTH") or 0)
            with self.lock:
                self.requests[kind] += 1
                self.bytes_in[kind] += size
            return app(environ, start_response)

        return counted


@contextmanager
def counted_aws(counter: Counter) -> Iterator[EmbeddedAws]:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    app = counter.wrap(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")).close()
        with patched_environ({**ENV, "AWS_ENDPOINT_URL": endpoint}):
            yield EmbeddedAws(endpoint)
    finally:
        server.shutdown()
        thread.join(timeout=5)


def state(rows: int, version: int) -> pa.Table:
    rng = np.random.default_rng(7)
    ids = pa.array([f"{i:012d}" for i in range(rows)])
    points = rng.integers(0, 10_000, rows)
    if version:
        points[: rows // 100] += version  # 1% of the rows updated
    return pa.table(
        {
            "id": ids,
            "points": pa.array(points),
            "balance": pa.array(rng.random(rows) * 1000),
            "segment": pa.array(rng.choice(["gold", "silver", "bronze"], rows)),
            "updated": pa.array(np.full(rows, np.datetime64("2026-01-05T09:00:00"), "datetime64[us]")),
        }
    )


def snapshot_rows(work: Path, snap: str, base: str | None, rows: int, version: int, changed: int) -> SnapshotRows:
    table = state(rows, version)
    state_path, changes_path = work / f"state-{snap}.parquet", work / f"changes-{snap}.parquet"
    pq.write_table(table, state_path)
    changes = table.slice(0, changed) if base else table
    if base:
        at = pa.scalar(datetime(2026, 1, 5, tzinfo=UTC), pa.timestamp("us", tz="UTC"))
        changes = changes.append_column("_cdc_operation", pa.array(["U"] * changed, pa.string()))
        changes = changes.append_column("_cdc_timestamp", pa.repeat(at, changed))
    pq.write_table(changes, changes_path)
    counts = {"rows_snapshot": rows, "updates": changed if base else 0, "inserts": 0 if base else rows, "deletes": 0}
    return SnapshotRows(snap, base, (state_path,), (changes_path,), counts)


def run(rows: int) -> list[str]:
    counter = Counter()
    lines = []
    with tempfile.TemporaryDirectory() as tmp, counted_aws(counter) as aws:
        work = Path(tmp)
        s3, glue = aws.client("s3"), aws.client("glue")
        s3.create_bucket(Bucket="iceberg-bench")
        glue.create_database(DatabaseInput={"Name": "bench"})
        lake = IcebergLake(
            glue_catalog(glue, s3_endpoint=aws.endpoint), S3Store(s3, "iceberg-bench", Layout()), "bench"
        )
        first = snapshot_rows(work, "20260105T090000Z", None, rows, 0, 0)
        lake.commit_snapshot("t", first, work)
        for label, snap, changed in (
            ("1% updated", "20260105T130000Z", rows // 100),
            ("no change", "20260105T170000Z", 0),
        ):
            base = "20260105T090000Z" if snap.endswith("130000Z") else "20260105T130000Z"
            measured = snapshot_rows(work, snap, base, rows, 1, changed)
            snapshot_bytes = measured.state.stat().st_size
            counter.reset()
            started = time.perf_counter()
            lake.commit_snapshot("t", measured, work)
            seconds = time.perf_counter() - started
            put = sum(v for k, v in counter.bytes_in.items() if k.startswith("s3:P"))
            calls = ", ".join(f"{k} {v}" for k, v in sorted(counter.requests.items()))
            lines.append(
                f"{rows:>10,} rows, {label:<10}: {put / 1e6:8.1f} MB written ({snapshot_bytes / 1e6:.1f} MB engine "
                f"snapshot file), {sum(counter.requests.values())} requests ({calls}), {seconds:.1f} s"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append")
    args = parser.parse_args(argv)
    for rows in args.rows or [1_000_000]:
        for line in run(rows):
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
