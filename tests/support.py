"""Helpers shared by the test tiers (plain functions; fixtures live beside the tests that use them)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from snapcdc.config import TableConfig
from snapcdc.store import S3Store

BUCKET = "snapcdc-test-data"


def csv_bytes(columns: Sequence[str], rows: Iterable[Sequence[object]], delimiter: str = ";") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return buffer.getvalue().encode("utf-8")


def put_raw(store: S3Store, table: TableConfig, snap: str, body: bytes) -> str:
    key = store.layout.raw_key(table.name, snap, table.file)
    store.client.put_object(Bucket=store.bucket, Key=key, Body=body)
    return key


def object_versions(store: S3Store, prefix: str = "") -> dict[str, str]:
    """key -> ETag of every object: compares bucket states before and after a rerun."""
    return {
        item["Key"]: item["ETag"]
        for page in store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    }
