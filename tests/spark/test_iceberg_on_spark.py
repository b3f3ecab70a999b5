"""Both engines keep the same Iceberg tables: the same source snapshots through the CDC function's path
(:class:`~snapcdc.cdc.iceberg.sync.IcebergLake`) and the Glue job's (:class:`~snapcdc.spark.iceberg.SparkIcebergLake`:
Spark tasks write the data files, the driver commits) give tables with the same commits, summaries and rows,
snapshot by snapshot (moto's Glue and S3 on 127.0.0.1)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pyiceberg.table import Table
from snapcdc.cdc.iceberg.catalog import glue_catalog
from snapcdc.cdc.iceberg.commit import committed_snapshots
from snapcdc.cdc.iceberg.files import footer
from snapcdc.cdc.iceberg.sync import IcebergLake
from snapcdc.cdc.stage import TableProcessor
from snapcdc.config import TableConfig
from snapcdc.lake.layout import Layout
from snapcdc.lake.ledger import accepted_records
from snapcdc.lake.snapshot import Snapshot
from snapcdc.lake.store import S3Store
from snapcdc.spark.iceberg import SparkIcebergLake
from snapcdc.spark.job import SparkEngine
from snapcdc_dev.embedded_aws import EmbeddedAws, embedded_aws

from tests.support import csv_bytes, put_raw

TABLE = TableConfig(
    name="clientes",
    file="clientes.csv",
    delimiter=";",
    primary_key=("idCliente",),
    column_types={"idCliente": "string"},
    iceberg=True,
)
COLUMNS = ["idCliente", "qtdePontos", "Descrição"]
SNAPSHOTS = {
    "20260105T090000Z": [["a", 10, "um"], ["b", 20, "dois"], ["c", 30, "três"]],
    "20260105T130000Z": [["a", 11, "um"], ["b", 20, "dois"], ["d", 40, "quatro"]],  # U a, D c, I d
    "20260105T170000Z": [["a", 11, "um"], ["b", 20, "dois"], ["d", 40, "quatro"]],  # no change
    "20260105T210000Z": [["a", "11x", "um"], ["b", 25, "dois"], ["e", 50, None]],  # qtdePontos becomes text
}
# What a commit's summary says of the source snapshot (the rest: Iceberg's own file counts and sizes,
# which follow each engine's part files: the Glue job writes an output as a part per bucket holding rows).
SUMMARY = ("snapcdc.", "added-records", "deleted-records", "total-records")


@pytest.fixture(scope="module")
def aws() -> Iterator[EmbeddedAws]:
    with embedded_aws() as server:
        yield server


def _lake(aws: EmbeddedAws, name: str) -> tuple[S3Store, Any]:
    s3, glue = aws.client("s3"), aws.client("glue")
    s3.create_bucket(Bucket=name)
    glue.create_database(DatabaseInput={"Name": name.replace("-", "_")})
    store = S3Store(s3, name, Layout())
    for snap, rows in SNAPSHOTS.items():
        put_raw(store, TABLE, snap, csv_bytes(COLUMNS, rows))
    return store, glue_catalog(glue, s3_endpoint=aws.endpoint)


def _commits(table: Table) -> dict[str, tuple[dict[str, str], list[dict[str, Any]]]]:
    """Per source snapshot: its commit's summary (the parts that depend on the rows) and its rows, sorted."""
    found = {}
    for snap, iceberg_id in committed_snapshots(table).items():
        summary = table.snapshot_by_id(iceberg_id).summary.additional_properties
        rows = table.scan(snapshot_id=iceberg_id).to_arrow()
        found[snap] = (
            {k: v for k, v in summary.items() if k.startswith(SUMMARY)},
            sorted(rows.to_pylist(), key=lambda row: (str(row.get("idcliente")), str(row.get("_cdc_operation")))),
        )
    return found


def test_the_glue_job_and_the_cdc_function_commit_the_same_iceberg_tables(
    spark: Any, aws: EmbeddedAws, tmp_path: Path
) -> None:
    # Given: the same raw snapshots in two buckets, each with its own Glue database
    lambda_store, lambda_catalog = _lake(aws, "on-lambda")
    spark_store, spark_catalog = _lake(aws, "on-spark")
    on_lambda = IcebergLake(lambda_catalog, lambda_store, "on_lambda")
    on_spark = SparkIcebergLake(spark_catalog, spark_store, "on_spark", spark=spark, endpoint_url=aws.endpoint)
    newest = Snapshot.parse(max(SNAPSHOTS))
    # When: the CDC stage processes them on each engine, each with its own Iceberg lake
    TableProcessor(lambda_store, TABLE, tmp_path / "lambda", iceberg=on_lambda).process(newest)
    engine = SparkEngine(spark, aws.endpoint)
    TableProcessor(spark_store, TABLE, tmp_path / "spark", engine=engine, iceberg=on_spark).process(newest)
    # Then: both tables of both lakes hold one commit per source snapshot, with the same summaries and rows
    for name in ("clientes", "clientes_changes"):
        expected = _commits(lambda_catalog.load_table(on_lambda.identifier(name)))
        actual = _commits(spark_catalog.load_table(on_spark.identifier(name)))
        assert list(expected) == list(SNAPSHOTS)
        assert actual == expected, name
    # And the Glue job's data files are one per file its run wrote (an empty part file gives none)
    state = spark_catalog.load_table(on_spark.identifier("clientes"))
    listed = {task.file.file_path for task in state.scan().plan_files()}
    assert all(path.startswith(f"s3://{spark_store.bucket}/iceberg/clientes/data/") for path in listed)
    (last,) = [r for r in accepted_records(spark_store, "clientes") if r.snapshot == max(SNAPSHOTS)]
    holding_rows = [key for key in last.keys("snapshot") if footer(spark_store, key)[0].num_rows]
    assert len(listed) == len(holding_rows) >= 1
    # And the widened column: the current state reads it as text, the old values kept under the retired name
    current = sorted(state.scan().to_arrow().to_pylist(), key=lambda row: row["idcliente"])
    assert [(r["idcliente"], r["qtdepontos"]) for r in current] == [("a", "11x"), ("b", "25"), ("e", "50")]
    assert "qtdepontos__long" in [f.name for f in state.schema().fields]
