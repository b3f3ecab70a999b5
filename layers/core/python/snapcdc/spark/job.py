"""The Spark CDC job (AWS Glue 5): the CDC stage of :mod:`snapcdc.cdc.stage` for one table snapshot, its diff
on Spark (:func:`snapcdc.spark.engine.spark_diff_files`); outputs, Glue tables and the run record
(last) written by the same code as the CDC function's.

Arguments (as Glue passes them, ``--NAME value``; others are ignored): ``--TABLE``, ``--SNAPSHOT``,
``--BUCKET_NAME``, ``--DATA_PREFIX`` (``-``: none), ``--GLUE_DATABASE`` (``-``: no catalog sync),
and for local runs ``--S3_ENDPOINT_URL``. After the snapshot, the table's later pending snapshots are
processed too, in order, until none is left (:mod:`snapcdc.cdc.routing` says why).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq

from snapcdc.cdc.catalog import GlueCatalog
from snapcdc.cdc.routing import claim
from snapcdc.cdc.stage import TableProcessor
from snapcdc.config import PipelineConfig, load_config
from snapcdc.engine import CDC_OPERATION, DiffOutcome, TableSpec
from snapcdc.engine.spec import HASH_COLUMNS
from snapcdc.lake.layout import Layout
from snapcdc.lake.records import RunRecord, processed_snapshots
from snapcdc.lake.snapshot import Snapshot
from snapcdc.lake.store import S3Store
from snapcdc.observability import logger

REQUIRED = ("TABLE", "SNAPSHOT", "BUCKET_NAME")
OPTIONAL = {"DATA_PREFIX": "-", "GLUE_DATABASE": "-", "S3_ENDPOINT_URL": "-"}


def resolved_options(argv: Sequence[str]) -> dict[str, str]:
    """``--NAME value`` pairs (as ``awsglue.utils.getResolvedOptions`` reads them) for our names."""
    found: dict[str, str] = {}
    wanted = {*REQUIRED, *OPTIONAL}
    items = list(argv)
    for at, item in enumerate(items[:-1]):
        if item.startswith("--") and item[2:] in wanted:
            found[item[2:]] = items[at + 1]
    missing = [name for name in REQUIRED if name not in found]
    if missing:
        raise SystemExit(f"snapcdc spark job: missing argument(s) {', '.join('--' + m for m in missing)}")
    return {**OPTIONAL, **found}


@dataclass(frozen=True)
class SparkEngine:
    """The CDC stage's engine on Spark (:class:`snapcdc.cdc.engines.CdcEngine`): the raw object and the old
    snapshot are read in place."""

    spark: Any
    endpoint_url: str | None = None

    def diff(
        self, store: S3Store, raw_key: str, old_key: str | None, spec: TableSpec, observed_at: datetime, work: Path
    ) -> DiffOutcome:
        from snapcdc.spark.engine import spark_diff_files

        bucket = store.bucket
        outcome = spark_diff_files(
            self.spark,
            old=f"s3://{bucket}/{old_key}" if old_key is not None else None,
            new=f"s3://{bucket}/{raw_key}",
            spec=spec,
            observed_at=observed_at,
            out_dir=work / "out",
            new_name=f"s3://{bucket}/{raw_key}",
            endpoint_url=self.endpoint_url,
        )
        if spec.with_preimages and old_key is not None and outcome.preimages_path is None:
            old_path = store.download_file(old_key, work / "preimage-base.parquet")
            preimages = updated_rows_before(old_path, outcome.changes_path, spec.primary_key)
            path = work / "out" / "preimages.parquet"
            pq.write_table(preimages, path)
            outcome = replace(outcome, preimages_path=path)
        return outcome


def updated_rows_before(old_snapshot: Path, changes: Path, primary_key: Sequence[str]) -> pa.Table:
    """The old rows of the change set's updated keys, in the order of its U rows (the changelog's
    pre-images), read on the driver from the old snapshot, as the job's other outputs are written."""
    updates = pq.read_table(changes, columns=list(primary_key), filters=[(CDC_OPERATION, "=", "U")])
    order = updates.append_column("__order", pa.array(range(updates.num_rows), pa.int64()))
    old = pq.read_table(old_snapshot)
    old = old.drop_columns([c for c in HASH_COLUMNS if c in old.column_names])
    joined = order.join(old, keys=list(primary_key), join_type="inner").sort_by("__order")
    if joined.num_rows != updates.num_rows:
        raise ValueError(f"{updates.num_rows} updated keys, {joined.num_rows} found in the old snapshot")
    return joined.select(old.column_names)


def run(
    spark: Any,
    store: S3Store,
    config: PipelineConfig,
    table: str,
    snapshot: Snapshot,
    catalog: GlueCatalog | None = None,
    endpoint_url: str | None = None,
) -> list[RunRecord]:
    """Processes ``snap`` (and the earlier pending snapshots), then every later pending snapshot, each
    claimed first (so the CDC function leaves it alone and never starts a run for it); stops when a later
    snapshot is claimed by someone else (another run owns it and what follows)."""
    engine = SparkEngine(spark, endpoint_url)
    processor = TableProcessor(store, config.table(table), catalog=catalog, engine=engine)
    records = processor.process(snapshot)
    while True:  # the table's later snapshots, deferred by the CDC function while this run was in flight
        processed = processed_snapshots(store, table)
        pending = [s for s in store.raw_snapshots(table) if s not in processed]
        if not pending:
            return records
        if not claim(store, table, pending[0], {"claimed_by": "spark job catch-up", "after": snapshot.id}):
            logger.info("later snapshot claimed by another run", extra={"table": table, "snapshot": pending[0]})
            return records
        records += processor.process(Snapshot.parse(pending[0]))


def main(argv: Sequence[str] | None = None) -> int:
    options = resolved_options(sys.argv[1:] if argv is None else argv)
    endpoint = None if options["S3_ENDPOINT_URL"] == "-" else options["S3_ENDPOINT_URL"]
    layout = Layout("" if options["DATA_PREFIX"] == "-" else options["DATA_PREFIX"])
    session = boto3.Session()
    store = S3Store(session.client("s3", endpoint_url=endpoint), options["BUCKET_NAME"], layout)
    catalog = None
    if options["GLUE_DATABASE"] != "-":
        catalog = GlueCatalog(session.client("glue"), options["GLUE_DATABASE"], options["BUCKET_NAME"], layout)
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.getOrCreate()  # Glue's session (a local one for local runs)
    started = time.perf_counter()
    snapshot = Snapshot.parse(options["SNAPSHOT"])
    records = run(spark, store, load_config(), options["TABLE"], snapshot, catalog, endpoint)
    logger.info(
        "spark cdc job done",
        extra={
            "records": [{"table": r.table, "snapshot": r.snapshot, "status": r.status} for r in records],
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    return 0
