"""The Spark tier: one local SparkSession per test process (session-scoped), and the engine's entry
points replaced by their Spark twins so that the engine's named tests run on both engines.

A machine without Java fails here with a clear message (never a skip): ``make test`` runs this tier.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from snapcdc.engine import DiffOutcome, DiffResult, TableSpec


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    from snapcdc.spark.session import local_session

    # The Python workers keep the environment the session starts with: throwaway AWS credentials for
    # the tests that read moto's S3 from Spark tasks (no real account is reachable either way).
    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        os.environ.setdefault(name, value)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    session = local_session(cores=2, app="snapcdc-tests")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def spark_diff_files(spark: Any) -> Any:
    from snapcdc.spark.engine import spark_diff_files as run

    def diff_files(**kwargs: Any) -> DiffOutcome:
        return run(spark, **kwargs)

    return diff_files


def spark_diff_tables(spark: Any) -> Any:
    """:func:`snapcdc.engine.diff_tables` on Spark: the tables as Parquet files, the files read back."""
    from snapcdc.spark.engine import spark_diff_files as run

    def diff_tables(
        old: pa.Table | None,
        new: pa.Table,
        spec: TableSpec,
        observed_at: datetime,
        *,
        new_name: str = "<new>",
        old_name: str = "<old>",
    ) -> DiffResult:
        with tempfile.TemporaryDirectory(prefix="spark-tables-") as folder:
            work = Path(folder)
            pq.write_table(new, work / "new.parquet")
            if old is not None:
                pq.write_table(old, work / "old.parquet")
            outcome = run(
                spark,
                old=work / "old.parquet" if old is not None else None,
                new=work / "new.parquet",
                spec=spec,
                observed_at=observed_at,
                out_dir=work / "out",
                new_name=new_name,
                old_name=old_name,
            )
            quarantine = pq.read_table(outcome.quarantine_path) if outcome.quarantine_path else None
            return DiffResult(
                changes=pq.read_table(outcome.changes_path),
                snapshot=pq.read_table(outcome.snapshot_path),
                quarantine=quarantine,
                stats=outcome.stats,
                schema=outcome.schema,
                schema_changes=outcome.schema_changes,
            )

    return diff_tables


@pytest.fixture
def on_spark(spark: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Replaces ``diff_files`` and ``diff_tables`` in the given test modules by the Spark engine."""

    def patch(*modules: Any) -> None:
        for module in modules:
            if hasattr(module, "diff_files"):
                monkeypatch.setattr(module, "diff_files", spark_diff_files(spark))
            if hasattr(module, "diff_tables"):
                monkeypatch.setattr(module, "diff_tables", spark_diff_tables(spark))

    return patch
