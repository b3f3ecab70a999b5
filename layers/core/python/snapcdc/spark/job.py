"""The Spark CDC job (AWS Glue 5): the CDC stage of :mod:`snapcdc.cdc.stage` for one table snapshot, its diff
on Spark (:func:`snapcdc.spark.engine.spark_diff_files`); outputs, Glue tables and the run record
(last) written by the same code as the CDC function's.

Arguments (as Glue passes them, ``--NAME value``; others are ignored): ``--TABLE``, ``--SNAPSHOT``,
``--BUCKET_NAME``, ``--DATA_PREFIX`` (``-``: none), ``--GLUE_DATABASE`` (``-``: no catalog sync; also the
database of the Iceberg tables, committed by :mod:`snapcdc.spark.iceberg`), ``--SHUFFLE_PARTITIONS``
(``0``: from each raw object's size, one per ``--PARTITION_MB``; ``-``: the session's own setting),
``--JOB_RUN_ID`` (Glue adds it: the run's id, written into the claims the run takes) and for local runs
``--S3_ENDPOINT_URL``. After the snapshot, the table's later pending snapshots are processed too, in
order, until none is left (:mod:`snapcdc.cdc.routing` says why).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pyarrow as pa
import pyarrow.parquet as pq

from snapcdc.cdc.catalog import GlueCatalog
from snapcdc.cdc.routing import job_arguments
from snapcdc.cdc.stage import TableProcessor
from snapcdc.config import PipelineConfig, load_config
from snapcdc.engine import DiffOutcome, TableSpec
from snapcdc.engine.spec import WrittenFile
from snapcdc.lake.layout import Layout
from snapcdc.lake.ledger import Claim, claim, processed_snapshots
from snapcdc.lake.records import RunRecord
from snapcdc.lake.snapshot import Snapshot
from snapcdc.lake.store import S3Store
from snapcdc.logs import write_json_lines
from snapcdc.settings import JobArgument
from snapcdc.spark.tuning import set_shuffle_partitions

if TYPE_CHECKING:  # pyiceberg is imported only when a table enables Iceberg
    from snapcdc.cdc.iceberg.sync import IcebergLake

logger = logging.getLogger(__name__)

REQUIRED = (JobArgument.TABLE.value, JobArgument.SNAPSHOT.value, JobArgument.BUCKET_NAME.value)
OPTIONAL = {
    JobArgument.DATA_PREFIX.value: "-",
    JobArgument.GLUE_DATABASE.value: "-",
    JobArgument.S3_ENDPOINT_URL.value: "-",
    JobArgument.JOB_RUN_ID.value: "-",
    JobArgument.SHUFFLE_PARTITIONS.value: "-",
    JobArgument.PARTITION_MB.value: "128",
}


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
    snapshot are read in place; the tasks write the outputs' part files under the snapshot's parts prefix
    (:meth:`~snapcdc.lake.layout.Layout.spark_parts_prefix`), which the driver joins, a row group at a
    time, into the stage's files (pre-images included: the tasks compute them, holding both sides)."""

    spark: Any
    endpoint_url: str | None = None
    shuffle_partitions: int | None = None  # None: the session's; 0: from the raw object's size (spark.tuning)
    partition_bytes: int = 128 * 1024 * 1024

    def diff(
        self,
        store: S3Store,
        raw_key: str,
        old_keys: Sequence[str],
        spec: TableSpec,
        observed_at: datetime,
        work: Path,
    ) -> DiffOutcome:
        from snapcdc.engine import writer
        from snapcdc.spark.engine import spark_diff_files
        from snapcdc.spark.outputs import PartTarget

        bucket = store.bucket
        if self.shuffle_partitions is not None:
            size = store.size(raw_key) or 0
            partitions = set_shuffle_partitions(self.spark, size, self.shuffle_partitions, self.partition_bytes)
            logger.info("shuffle partitions", extra={"raw_bytes": size, "shuffle_partitions": partitions})
        raw = store.layout.parse_raw_key(raw_key)
        assert raw is not None  # the stage diffs raw objects only
        parts = f"s3://{bucket}/{store.layout.spark_parts_prefix(raw.table, raw.snap)}"
        target = PartTarget({n: parts + n + "/part-{part:05d}.parquet" for n in writer.OUTPUTS}, self.endpoint_url)
        outcome = spark_diff_files(
            self.spark,
            old=[f"s3://{bucket}/{key}" for key in old_keys] if old_keys else None,
            old_name=f"s3://{bucket}/{old_keys[0]}" if old_keys else None,
            new=f"s3://{bucket}/{raw_key}",
            spec=spec,
            observed_at=observed_at,
            out_dir=work / "spark",
            new_name=f"s3://{bucket}/{raw_key}",
            endpoint_url=self.endpoint_url,
            target=target,
        )
        out = work / "out"
        try:
            joined = {name: joined_file(store, files, out / f"{name}.parquet") for name, files in outcome.files.items()}
        finally:
            target.remove([f for files in outcome.files.values() for f in files])
        return replace(
            outcome,
            changes_path=joined["changes"].path,
            snapshot_path=joined["snapshot"].path,
            full_load_path=joined["full_load"].path if "full_load" in joined else None,
            quarantine_path=joined["quarantine"].path if "quarantine" in joined else None,
            preimages_path=joined["preimages"].path if "preimages" in joined else None,
            files={name: [found.file] for name, found in joined.items()},
        )


@dataclass(frozen=True)
class Joined:
    path: Path
    file: WrittenFile


def joined_file(store: S3Store, files: list[WrittenFile], path: Path) -> Joined:
    """Part files (``s3://`` locations) as one local Parquet file, a row group at a time (the driver's
    memory holds one row group), with the first part's schema (the snapshot's hash signature)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    schema: pa.Schema | None = None
    out: pq.ParquetWriter | None = None
    rows = 0
    try:
        for at, file in enumerate(files):
            local = store.download_file(file.location.split("/", 3)[3], path.with_name(f".part-{at:05d}.parquet"))
            part = pq.ParquetFile(local)
            if out is None:
                schema = part.schema_arrow
                out = pq.ParquetWriter(path, schema, compression="snappy")
            for group in range(part.num_row_groups):
                table = part.read_row_group(group)
                rows += table.num_rows
                out.write_table(table.cast(schema))
            part.close()
            local.unlink()
    finally:
        if out is not None:
            out.close()
    return Joined(path, WrittenFile(str(path), rows, path.stat().st_size))


def run(
    spark: Any,
    store: S3Store,
    config: PipelineConfig,
    table: str,
    snapshot: Snapshot,
    catalog: GlueCatalog | None = None,
    endpoint_url: str | None = None,
    job_run: str | None = None,
    shuffle_partitions: int | None = None,
    partition_bytes: int = 128 * 1024 * 1024,
    iceberg: IcebergLake | None = None,
) -> list[RunRecord]:
    """Processes ``snap`` (and the earlier pending snapshots), then every later pending snapshot, each
    claimed first (so the CDC function leaves it alone and never starts a run for it); stops when a later
    snapshot is claimed by someone else (another run owns it and what follows)."""
    engine = SparkEngine(spark, endpoint_url, shuffle_partitions, partition_bytes)
    processor = TableProcessor(store, config.table(table), catalog=catalog, engine=engine, iceberg=iceberg)
    records = processor.process(snapshot)
    while True:  # the table's later snapshots, deferred by the CDC function while this run was in flight
        processed = processed_snapshots(store, table)
        pending = [s for s in store.raw_snapshots(table) if s not in processed]
        if not pending:
            return records
        database = catalog.database if catalog is not None else None
        arguments = job_arguments(table, pending[0], store.bucket, store.layout.prefix, database)
        document = Claim(arguments=arguments, job_run=job_run, reason=f"caught up by the run of {snapshot.id}")
        if not claim(store, table, pending[0], document):
            logger.info("later snapshot claimed by another run", extra={"table": table, "snapshot": pending[0]})
            return records
        records += processor.process(Snapshot.parse(pending[0]))


def main(argv: Sequence[str] | None = None) -> int:
    options = resolved_options(sys.argv[1:] if argv is None else argv)
    write_json_lines()  # Glue keeps the job's standard output in its CloudWatch log group
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
    config = load_config()
    iceberg = None
    if catalog is not None and any(t.iceberg for t in config.tables):  # docs/iceberg.md, "Both engines"
        from snapcdc.spark.iceberg import spark_iceberg_lake

        iceberg = spark_iceberg_lake(config, store, session.client("glue"), catalog.database, spark, endpoint)
    job_run = None if options["JOB_RUN_ID"] == "-" else options["JOB_RUN_ID"]
    shuffle = None if options["SHUFFLE_PARTITIONS"] == "-" else int(options["SHUFFLE_PARTITIONS"])
    records = run(
        spark,
        store,
        config,
        options["TABLE"],
        snapshot,
        catalog,
        endpoint,
        job_run,
        shuffle_partitions=shuffle,
        partition_bytes=int(options["PARTITION_MB"]) * 1024 * 1024,
        iceberg=iceberg,
    )
    logger.info(
        "spark cdc job done",
        extra={
            "records": [{"table": r.table, "snapshot": r.snapshot, "status": r.status} for r in records],
            "seconds": round(time.perf_counter() - started, 1),
        },
    )
    return 0
