"""The Spark tier: one local SparkSession per test process (session-scoped), and the engine's entry
points replaced by their Spark twins so that the engine's named tests run on both engines.

A machine without Java fails here with a clear message (never a skip): ``make test`` runs this tier.
"""

from __future__ import annotations

import dataclasses
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from snapcdc.engine import CDC_OPERATION, SOURCE_RECORD, DiffOutcome, DiffResult, TableSpec
from snapcdc.engine import diff_files as engine_diff_files
from snapcdc.engine import diff_tables as engine_diff_tables
from snapcdc.engine.hash_columns import data_only
from snapcdc.engine.hashing import key_hash

from tests.support import spark_process_environment


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    from snapcdc.spark.session import local_session

    spark_process_environment()  # the tests that read moto's S3 from Spark tasks need its credentials
    session = local_session(cores=2, app="snapcdc-tests")
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


def in_engine_order(table: pa.Table, reference: pa.Table | None, primary_key: Sequence[str]) -> pa.Table:
    """``table``'s rows in the order of the same rows in ``reference`` (the Lambda engine's output):
    a quarantine by record number, other outputs by (operation, key hash); rows the reference does not
    hold go last, so a difference still fails the test's assertions."""
    if SOURCE_RECORD in table.column_names:
        return table.take(pc.sort_indices(table, [(SOURCE_RECORD, "ascending")]))
    if reference is None or not table.num_rows or any(k not in table.column_names for k in primary_key):
        return table

    def places(rows: pa.Table) -> list[tuple[str, int]]:
        operations = rows[CDC_OPERATION].to_pylist() if CDC_OPERATION in rows.column_names else [""] * rows.num_rows
        return list(zip(operations, key_hash(rows, primary_key).tolist(), strict=True))

    at = {place: i for i, place in reversed(list(enumerate(places(reference.cast(table.schema, safe=False)))))}
    order = [at.get(place, len(at) + i) for i, place in enumerate(places(table))]
    return table.take(pa.array(np.argsort(order, kind="stable")))


def written_as(path: str) -> dict[str, Any]:
    """The writer options a part file was written with (its first row group's), to write the joined
    file with them: the engine's tests also check codecs, dictionaries and statistics."""
    metadata = pq.ParquetFile(path).metadata
    if not metadata.num_row_groups:
        return {}
    group = metadata.row_group(0)
    chunks = [group.column(i) for i in range(group.num_columns)]
    codec = {"UNCOMPRESSED": "none", "LZ4_RAW": "lz4"}
    return {
        "compression": {c.path_in_schema: codec.get(c.compression, c.compression.lower()) for c in chunks},
        "write_statistics": [c.path_in_schema for c in chunks if c.is_stats_set],
        "use_dictionary": [c.path_in_schema for c in chunks if any("DICTIONARY" in e for e in c.encodings)],
    }


def joined_parts(
    outcome: DiffOutcome, folder: Path, reference: dict[str, pa.Table | None], primary_key: Sequence[str]
) -> DiffOutcome:
    """The Spark engine's outcome with each output's part files read as one table (a snapshot's N
    files) and written as one file in ``folder``: the engine's tests read one file. The order of rows
    across part files is not part of the Spark engine's contract (a part holds a bucket of keys); the
    engine's tests also assert the engine's order, so the rows are put in it (``reference``)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, files in outcome.files.items():
        tables = [pq.read_table(f.location) for f in files]
        table = pa.concat_tables(tables).replace_schema_metadata(tables[0].schema.metadata)
        wanted = reference.get(name)
        if wanted is not None and wanted.schema.names == table.schema.names:
            table = in_engine_order(table, wanted, primary_key)
        paths[name] = folder / f"{name}.parquet"
        pq.write_table(table, paths[name], **written_as(files[0].location))
    return dataclasses.replace(
        outcome,
        changes_path=paths["changes"],
        snapshot_path=paths["snapshot"],
        full_load_path=paths.get("full_load"),
        quarantine_path=paths.get("quarantine"),
        preimages_path=paths.get("preimages"),
    )


def spark_diff_files(spark: Any) -> Any:
    from snapcdc.spark.engine import spark_diff_files as run

    def diff_files(**kwargs: Any) -> DiffOutcome:
        outcome = run(spark, **kwargs)
        out_dir = Path(kwargs["out_dir"])
        with tempfile.TemporaryDirectory(prefix="engine-order-") as folder:
            try:
                engine = engine_diff_files(**{**kwargs, "out_dir": Path(folder)})
            except Exception:  # the engine refused what Spark accepted: the test's assertions say so
                reference: dict[str, pa.Table | None] = {}
            else:
                reference = {name: pq.read_table(files[0].location) for name, files in engine.files.items()}
            spec = kwargs["spec"]
            return joined_parts(outcome, out_dir.with_name(out_dir.name + ".joined"), reference, spec.primary_key)

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
            try:
                engine = engine_diff_tables(old, new, spec, observed_at, new_name=new_name, old_name=old_name)
            except Exception:  # the engine refused what Spark accepted: the test's assertions say so
                reference: dict[str, pa.Table | None] = {}
            else:
                reference = {
                    "changes": engine.changes,
                    "snapshot": engine.snapshot,
                    "quarantine": engine.quarantine,
                    "full_load": data_only(engine.snapshot),
                }
            outcome = joined_parts(outcome, work / "joined", reference, spec.primary_key)
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


from tests.spark.cluster import standalone_cluster  # noqa: E402, F401 - the fixture, for this tier's tests
