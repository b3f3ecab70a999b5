"""Schema drift, read as Athena reads it: drifting snapshots through `snapcdc ingest` on an embedded
AWS (moto server), then every Parquet file of the table read with the table's declared schema by
Spark 3.5.4 (AWS Glue 5.0's), whose vectorized Parquet reader, like Athena, rejects a file whose
physical type differs from the declared one (`HIVE_BAD_DATA ... type BINARY in parquet is
incompatible with type bigint`). Before the migration the early files kept `n` as int64 and this
read failed; after it, every file has the table's one physical schema."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from snapcdc.lake.layout import Layout
from snapcdc.lake.store import S3Store
from snapcdc_dev.embedded_aws import embedded_aws

from tests.support import csv_bytes, spark_process_environment

BUCKET = "snapcdc-drift-e2e"
TABLE = "pontos"
CONFIG = {"dataset": "o/d", "tables": [{"name": TABLE, "file": "pontos.csv", "delimiter": ";", "primary_key": ["id"]}]}
S1, S2, S3, S4 = "20260105T090000Z", "20260105T130000Z", "20260105T170000Z", "20260105T210000Z"
# n is inferred int64, gets "12a" in S3 (widened to string); S4 adds the column "pontos_extra" (int64).
DRIFT = [
    (S1, ["id", "n", "nome"], [["a", 10, "Ana"], ["b", 20, "Bia"], ["c", 30, "Caio"]]),
    (S2, ["id", "n", "nome"], [["a", 11, "Ana"], ["b", 20, "Bia"], ["c", 30, "Caio"], ["d", 40, "Davi"]]),
    (S3, ["id", "n", "nome"], [["a", 11, "Ana"], ["b", "12a", "Bia"], ["c", 30, "Caio"], ["d", 40, "Davi"]]),
    (S4, ["id", "n", "nome", "pontos_extra"], [["a", 11, "Ana", 1], ["b", "12a", "Bia", 2], ["e", 50, "Eva", 3]]),
]
DATABASE = "lake"
# What the Glue tables must say after the drift (and what every file must hold).
EXPECTED_COLUMNS = {"id": "string", "n": "string", "nome": "string", "pontos_extra": "bigint"}
CDC_COLUMNS = {"_cdc_operation": "string", "_cdc_timestamp": "timestamp"}
GLUE_TABLE_OF = {"full-load/": f"{TABLE}_full_load", "cdc/": f"{TABLE}_cdc", "snapshots/": f"{TABLE}_snapshots"}


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """One local Spark per test process: local[1], no UI, bound to 127.0.0.1."""
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        pytest.fail("Java 17 is needed for the drift test's Spark (Athena-like) read: no java on PATH, no JAVA_HOME")
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark_process_environment()  # the JVM outlives this session: later Spark tests' tasks read moto's S3
    from pyspark.sql import SparkSession

    session = (
        SparkSession.builder.master("local[1]")
        .appName("snapcdc-drift-e2e")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.parquet.enableVectorizedReader", "true")
        .config("spark.sql.shuffle.partitions", "1")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def _spark_schema(columns: dict[str, str]) -> object:
    """A Spark schema from Glue column types (what Athena applies to every file of the table)."""
    from pyspark.sql import types as T

    glue = {
        "string": T.StringType(),
        "bigint": T.LongType(),
        "double": T.DoubleType(),
        "boolean": T.BooleanType(),
        "timestamp": T.TimestampType(),
        "date": T.DateType(),
    }
    return T.StructType([T.StructField(name, glue[kind], True) for name, kind in columns.items()])


def _glue_columns(glue_client, database: str, table: str) -> dict[str, str]:
    """The Glue table's columns (name -> type): the schema Athena applies to every file under it."""
    described = glue_client.get_table(DatabaseName=database, Name=table)["Table"]["StorageDescriptor"]
    return {column["Name"]: column["Type"] for column in described["Columns"]}


def _ingest(endpoint: str, config: Path, snap: str, export: Path) -> subprocess.CompletedProcess[str]:
    snapcdc = Path(sys.executable).with_name("snapcdc")
    argv = [str(snapcdc), "ingest", "--bucket", BUCKET, "--endpoint-url", endpoint, "--config", str(config)]
    argv += ["--glue-database", DATABASE, "--table", TABLE, "--snapshot", snap, str(export)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)


def _read_every_row(spark, path: Path, columns: dict[str, str]) -> int:
    """Every row of one file read with the declared schema; a physical type mismatch raises."""
    frame = spark.read.schema(_spark_schema(columns)).parquet(str(path))  # type: ignore[attr-defined]
    return len(frame.collect())


def test_drifting_snapshots_ingested_are_readable_with_the_glue_tables_schema(spark, tmp_path: Path) -> None:
    # Given an embedded S3 and Glue, and four exports of a table whose int column gets "12a", then a new column
    config = tmp_path / "pipeline.json"
    config.write_text(json.dumps(CONFIG))
    with embedded_aws() as aws:
        aws.client("s3").create_bucket(Bucket=BUCKET)
        aws.client("glue").create_database(DatabaseInput={"Name": DATABASE})
        store = S3Store(aws.client("s3"), BUCKET, Layout())
        # When each is ingested with the console script, in order
        for snap, columns, rows in DRIFT:
            export = tmp_path / f"pontos-{snap}.csv"
            export.write_bytes(csv_bytes(columns, rows))
            done = _ingest(aws.endpoint, config, snap, export)
            assert done.returncode == 0, done.stderr
            assert json.loads(done.stdout.strip().splitlines()[-1])["status"] == "accepted"
        files = {}
        for prefix in (f"full-load/{TABLE}/", f"cdc/{TABLE}/", f"snapshots/{TABLE}/"):
            for key in store.list_keys(prefix):
                files[key] = store.download_file(key, tmp_path / "lake" / key)
        glue = {prefix: _glue_columns(aws.client("glue"), DATABASE, name) for prefix, name in GLUE_TABLE_OF.items()}
    # Then the Glue tables say the drifted schema
    assert glue["full-load/"] == glue["snapshots/"] == EXPECTED_COLUMNS
    assert glue["cdc/"] == {**EXPECTED_COLUMNS, **CDC_COLUMNS}
    # And every file of the table reads with its Glue table's schema, as Athena would read it
    assert len(files) == 1 + 3 + 4
    rows = {}
    for key, path in sorted(files.items()):
        declared = next(columns for prefix, columns in glue.items() if key.startswith(prefix))
        rows[key] = _read_every_row(spark, path, declared)
    assert rows[f"snapshots/{TABLE}/snapshot={S4}/{TABLE}.parquet"] == 3
    assert rows[f"full-load/{TABLE}/{TABLE}.parquet"] == 3
