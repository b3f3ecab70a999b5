"""The extract's cost, streaming against the former disk path: wall time and S3 requests.

Both paths download the same version from the fake Kaggle API (127.0.0.1) with the real client and
write the same raw objects to moto's in-process S3; the disk path is what the extract did before it
streamed (download to a file, :func:`snapcdc.extract.safe_zip.extract_members`, hash each file, upload it), without
the bookkeeping reads and the manifest (the stream path's counts include them: 4 HEAD, 5 LIST, 1 GET,
1 PUT for the four tables).

    .venv/bin/python -m bench.extract_stream_bench [--mb 100]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import boto3
from moto import mock_aws
from snapcdc.config import load_config
from snapcdc.extract.kaggle import KaggleCredentials, KaggleOptions, KaggleSource
from snapcdc.extract.safe_zip import extract_members
from snapcdc.extract.stage import run_extract
from snapcdc.lake.layout import Layout
from snapcdc.lake.store import S3Store
from snapcdc_dev.fake_kaggle import FakeKaggle, build_zip
from snapcdc_dev.sample_data import LoyaltyDataset

BUCKET = "snapcdc-bench"


def _big_files(megabytes: int) -> dict[str, bytes]:
    """The demo's tables, with transacoes grown to about ``megabytes`` MB once deflated."""
    files = LoyaltyDataset(seed=1).files()
    rng = random.Random(7)
    rows = []
    size = 0
    while size < megabytes * 2_000_000:  # random hex deflates about 2:1
        ids = f"{rng.getrandbits(128):032x};{rng.getrandbits(128):032x}"
        row = f"{ids};2025-10-10 21:40:00.000;{rng.randint(-50, 50)};twitch\n"
        rows.append(row)
        size += len(row)
    files["transacoes.csv"] = b"IdTransacao;IdCliente;DtCriacao;QtdePontos;DescSistemaOrigem\n" + "".join(rows).encode()
    return files


def _counting(client: Any) -> Counter[str]:
    calls: Counter[str] = Counter()
    client.meta.events.register("before-call.s3", lambda model, **_: calls.update([model.name]))
    return calls


def _disk_path(store: S3Store, source: KaggleSource, config: Any, work: Path, version: int) -> None:
    zip_path = source.download(config.dataset, work / "download", version=version)
    files = extract_members(
        zip_path,
        work / "files",
        {t.file for t in config.tables},
        max_member_bytes=config.max_member_bytes,
        max_total_bytes=config.max_total_bytes,
        max_compression_ratio=config.max_compression_ratio,
    )
    zip_path.unlink()
    for table in config.tables:
        path = files[table.file]
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        store.upload_file_with_metadata(
            path, store.layout.raw_key(table.name, "20260105T090000Z", table.file), {"sha256": digest}
        )


def measure(files: dict[str, bytes], label: str) -> None:
    config = load_config()
    zip_bytes = build_zip(files)
    print(f"{label}: archive {len(zip_bytes) / 1e6:.1f} MB, members {sum(len(v) for v in files.values()) / 1e6:.1f} MB")
    with FakeKaggle() as kaggle, mock_aws(), tempfile.TemporaryDirectory() as tmp:
        kaggle.publish_zip(config.dataset, zip_bytes)
        source = KaggleSource(KaggleCredentials(kaggle.username, kaggle.key), Path(tmp), KaggleOptions(kaggle.endpoint))
        version = source.current_version(config.dataset).number
        for path in ("disk", "stream"):
            client = boto3.client("s3")
            client.create_bucket(Bucket=BUCKET)
            store = S3Store(client, BUCKET, Layout(path))
            calls = _counting(client)
            started = time.perf_counter()
            if path == "disk":
                _disk_path(store, source, config, Path(tmp) / "work", version)
            else:
                run_extract(store=store, config=config, source=source, snap="20260105T090000Z")
            seconds = time.perf_counter() - started
            print(f"  {path:6s} {seconds:6.2f} s  S3 requests {sum(calls.values()):3d}  {dict(sorted(calls.items()))}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=100, help="size of the large archive, MB")
    args = parser.parse_args()
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    measure(LoyaltyDataset(seed=1).files(), "demo dataset")
    measure(_big_files(args.mb), f"~{args.mb} MB archive")


if __name__ == "__main__":
    main()
