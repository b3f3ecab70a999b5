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

from snapcdc.cdc.catalog import GlueCatalog
from snapcdc.cdc.engines import Placement
from snapcdc.cdc.routing import job_arguments
from snapcdc.cdc.stage import TableProcessor
from snapcdc.config import PipelineConfig, load_config
from snapcdc.engine import DeleteGuardError, DiffOutcome, InputError, TableSpec, writer
from snapcdc.engine.spec import WrittenFile
from snapcdc.lake.layout import Layout
from snapcdc.lake.ledger import Claim, claim, processed_snapshots
from snapcdc.lake.records import RunRecord
from snapcdc.lake.snapshot import Snapshot
from snapcdc.lake.store import S3Store
from snapcdc.logs import write_json_lines
from snapcdc.settings import JobArgument
from snapcdc.spark import commit
from snapcdc.spark.merge import CDC, CHANGELOG, DMS, ChangePart, FeedRequest, merge, pair_preimages
from snapcdc.spark.outputs import PartTarget
from snapcdc.spark.sources import Source
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
    """The CDC stage's engine on Spark (:class:`snapcdc.cdc.engines.CdcEngine`), writing in place: the raw
    object and the old snapshot's parts are read where they are; the diff tasks write the snapshot, the full
    load and the quarantine at their final part keys, and each bucket's changes (and pre-images) as scratch
    parts; merge tasks write the change set and the feeds from those (:mod:`snapcdc.spark.merge`); the driver
    commits (:mod:`snapcdc.spark.commit`) with counts and file lists only."""

    spark: Any
    endpoint_url: str | None = None
    shuffle_partitions: int | None = None  # None: the session's; 0: from the raw object's size (spark.tuning)
    partition_bytes: int = 128 * 1024 * 1024

    @property
    def writes_in_place(self) -> bool:
        return True

    def diff(
        self,
        store: S3Store,
        raw_key: str,
        old_keys: Sequence[str],
        spec: TableSpec,
        observed_at: datetime,
        work: Path,
        placement: Placement | None = None,
    ) -> DiffOutcome:
        from snapcdc.spark.engine import spark_diff_files

        if placement is None:
            raise ValueError("the Spark engine writes in place: it needs the outputs' keys")
        bucket = store.bucket
        if self.shuffle_partitions is not None:
            size = store.size(raw_key) or 0
            partitions = set_shuffle_partitions(self.spark, size, self.shuffle_partitions, self.partition_bytes)
            logger.info("shuffle partitions", extra={"raw_bytes": size, "shuffle_partitions": partitions})
        raw = store.layout.parse_raw_key(raw_key)
        assert raw is not None  # the stage diffs raw objects only
        places = Places.of(store, raw.table, raw.snap, placement)
        try:
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
                target=places.diff_target(self.endpoint_url),
            )
        except (InputError, DeleteGuardError):  # refused: nothing of this snapshot is left at its keys
            commit.remove_stale(store, places.templates.values(), kept=())
            commit.remove_scratch(store, places.scratch)
            raise
        first = not old_keys
        sources = (
            [ChangePart(Source(f.location, self.endpoint_url), f.bytes) for f in outcome.files[writer.FULL_LOAD]]
            if first
            else pair_preimages(
                outcome.files[writer.CHANGES], outcome.files.get(writer.PREIMAGES, []), self.endpoint_url
            )
        )
        request = FeedRequest(first, placement.commit_version, observed_at, places.merge_target(self.endpoint_url))
        merged = merge(self.spark, sources, request)
        commit.check_feeds(merged, outcome.stats, first)
        files = {
            name: [WrittenFile(_key(f.location), f.rows, f.bytes) for f in found]
            for name, found in {
                "snapshot": outcome.files[writer.SNAPSHOT],
                "quarantine": outcome.files.get(writer.QUARANTINE, []),
                **({"full_load": outcome.files[writer.FULL_LOAD]} if first else {}),
                **merged,
            }.items()
            if found
        }
        kept = [f.location for found in files.values() for f in found]
        removed = commit.remove_stale(store, places.templates.values(), kept)
        scratch = commit.remove_scratch(store, places.scratch)
        logger.info(
            "spark outputs written",
            extra={"files": {n: len(f) for n, f in files.items()}, "stale_removed": len(removed), "scratch": scratch},
        )
        return replace(outcome, files=files)


def _key(location: str) -> str:
    """``s3://bucket/key`` -> key."""
    return location.split("/", 3)[3]


@dataclass(frozen=True)
class Places:
    """One snapshot's part templates: each output's final parts (keys, by the run record's names) and the
    diff tasks' scratch (the change set and pre-images per bucket, merged then deleted)."""

    bucket: str
    templates: dict[str, str]  # run record output name -> part template (a key with {part:05d})
    scratch: str  # the snapshot's scratch prefix

    @classmethod
    def of(cls, store: S3Store, table: str, snap: str, placement: Placement) -> Places:
        templates = {name: Layout.part_template(key) for name, key in placement.keys.items()}
        return cls(store.bucket, templates, store.layout.spark_parts_prefix(table, snap))

    def _s3(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    def diff_target(self, endpoint_url: str | None) -> PartTarget:
        """Where the diff tasks write: the snapshot, full load and quarantine at their keys, the change set
        and pre-images (a later snapshot's) in scratch."""
        found = {name: self._s3(self.templates[name]) for name in (writer.SNAPSHOT, writer.QUARANTINE)}
        if "full_load" in self.templates:
            found[writer.FULL_LOAD] = self._s3(self.templates["full_load"])
        else:
            for name in (writer.CHANGES, writer.PREIMAGES):
                found[name] = self._s3(f"{self.scratch}{name}/part-{{part:05d}}.parquet")
        return PartTarget(found, endpoint_url)

    def merge_target(self, endpoint_url: str | None) -> PartTarget:
        """Where the merge tasks write: the change set and the feeds the table enables, at their keys."""
        names = (CDC, CHANGELOG, DMS)
        return PartTarget({n: self._s3(self.templates[n]) for n in names if n in self.templates}, endpoint_url)


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
