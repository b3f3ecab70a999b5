"""The Iceberg tier: pyiceberg's Glue catalog against moto's Glue and S3, served on 127.0.0.1.

pyiceberg writes through pyarrow's own S3 client, which moto's in-process mock does not catch, so
these tests use the moto server (one per test module); each test gets its own bucket and database.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from snapcdc.cdc.iceberg.catalog import glue_catalog
from snapcdc.cdc.iceberg.sync import IcebergLake, SnapshotRows
from snapcdc.engine import DiffResult, TableSpec, data_only, diff_tables
from snapcdc.lake.layout import Layout, snapshot_id
from snapcdc.lake.store import S3Store
from snapcdc_dev.embedded_aws import EmbeddedAws, embedded_aws

_NAMES = itertools.count()
START = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAws]:
    with embedded_aws() as server:
        yield server


@pytest.fixture
def lake(aws: EmbeddedAws) -> IcebergLake:
    n = next(_NAMES)
    bucket, database = f"iceberg-test-{n}", f"lake_{n}"
    s3 = aws.client("s3")
    s3.create_bucket(Bucket=bucket)
    glue = aws.client("glue")
    glue.create_database(DatabaseInput={"Name": database})
    return IcebergLake(glue_catalog(glue, s3_endpoint=aws.endpoint), S3Store(s3, bucket, Layout()), database)


@dataclass
class Source:
    """Source snapshots of one table, diffed by the engine as the CDC stage does, as Iceberg input."""

    work: Path
    spec: TableSpec = field(default_factory=lambda: TableSpec(primary_key=("id",), column_types={"id": "string"}))
    results: list[tuple[str, DiffResult]] = field(default_factory=list)

    def snapshot(self, rows: dict[str, list[Any]]) -> SnapshotRows:
        """The next snapshot (4 hours after the previous) with ``rows`` (CSV text values)."""
        at = START + timedelta(hours=4 * len(self.results))
        snap = snapshot_id(at)
        old = self.results[-1][1].snapshot if self.results else None
        result = diff_tables(old, pa.table(rows), self.spec, observed_at=at)
        base = self.results[-1][0] if self.results else None
        self.results.append((snap, result))
        state = self.work / f"state-{snap}.parquet"
        changes = self.work / f"changes-{snap}.parquet"
        pq.write_table(result.snapshot, state)
        pq.write_table(result.changes if base else data_only(result.snapshot), changes)
        return SnapshotRows(snap, base, (state,), (changes,), result.stats.as_dict())

    def rows_of(self, snap: str) -> pa.Table:
        return data_only(dict(self.results)[snap].snapshot)


@pytest.fixture
def source(tmp_path: Path) -> Source:
    return Source(tmp_path)


def sorted_rows(table: pa.Table, key: str = "id") -> list[dict[str, Any]]:
    return sorted(table.to_pylist(), key=lambda row: row[key])
