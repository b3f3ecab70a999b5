"""CDC Lambda: S3 ObjectCreated events for raw CSVs in, change files out.

Thin on purpose: parse the event, call :func:`snapcdc.cdc.batch.process_raw_keys`, report.
Deterministic refusals (delete guard, malformed file) are recorded and alarmed on, not retried; so are
permanent failures (:class:`~snapcdc.errors.PermanentError`: a retry cannot help). Transient failures
are raised after the other tables ran, so Lambda retries (done work is a no-op).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import cache, partial
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import unquote_plus

import boto3
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import S3Event, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from snapcdc import metric_names as names
from snapcdc.cdc.batch import BatchReport, process_raw_keys
from snapcdc.cdc.catalog import GlueCatalog
from snapcdc.cdc.engines import ArrowEngine
from snapcdc.cdc.routing import SparkRoute
from snapcdc.config import PipelineConfig, load_config
from snapcdc.errors import SnapcdcError
from snapcdc.lake.layout import Layout
from snapcdc.lake.records import RefusalReason
from snapcdc.lake.store import S3Store
from snapcdc.observability import logger, metrics, publish_table_metrics, traced
from snapcdc.settings import CdcSettings, load_settings

if TYPE_CHECKING:
    from snapcdc.cdc.iceberg.sync import IcebergLake


class CdcBatchError(SnapcdcError, RuntimeError):
    """Some tables failed unexpectedly; raised so that Lambda retries the event."""


class _Dependencies(NamedTuple):
    """What every invocation of a warm function uses, built on its first."""

    store: S3Store
    config: PipelineConfig
    catalog: GlueCatalog | None
    route: SparkRoute | None
    iceberg: Callable[[], IcebergLake | None] | None  # builds the Iceberg tables' keeper, when one is needed


@cache
def _dependencies() -> _Dependencies:
    settings = load_settings(CdcSettings)
    layout = Layout(settings.data_prefix)
    store = S3Store(boto3.client("s3", endpoint_url=settings.s3_endpoint_url), settings.bucket_name, layout)
    catalog = None
    if settings.glue_database:
        catalog = GlueCatalog(boto3.client("glue"), settings.glue_database, settings.bucket_name, layout)
    route = None
    if settings.spark_job_name:
        timeout = settings.spark_job_timeout_minutes
        route = SparkRoute(
            boto3.client("glue"),
            settings.spark_job_name,
            settings.spark_threshold_bytes,
            settings.glue_database,
            stale_after=timedelta(minutes=timeout) if timeout else None,
            max_restarts=settings.spark_max_restarts,
        )
    config = load_config(settings.pipeline_config)
    iceberg = None
    if settings.iceberg_catalog_database and any(t.iceberg for t in config.tables):  # docs/iceberg.md
        iceberg = cache(partial(_iceberg_lake, config, store, settings.iceberg_catalog_database))
    return _Dependencies(store, config, catalog, route, iceberg)


def _iceberg_lake(config: PipelineConfig, store: S3Store, database: str) -> IcebergLake | None:
    """Built for the first table of an event that enables Iceberg (it imports pyiceberg and pandas)."""
    from snapcdc.cdc.iceberg.sync import iceberg_lake

    return iceberg_lake(config, store, boto3.client("glue"), database)


def _report_metrics(report: BatchReport) -> None:
    for record in report.records:
        stats = names.CDC_STAT_METRICS
        counts: dict[str, float] = {stats[k]: v for k, v in record.stats.items() if k in stats}
        counts[names.DELETE_GUARD_REFUSED] = int(record.refused_reason == RefusalReason.DELETE_GUARD)
        counts[names.MALFORMED_SNAPSHOTS] = int(record.refused_reason == RefusalReason.MALFORMED_INPUT)
        publish_table_metrics(record.table, counts, seconds=record.seconds)
        if not record.accepted:
            logger.error("snapshot refused", extra={"run_record": record.model_dump(mode="json")})
    for table, error in report.permanent_failures.items():
        logger.error("table failed; retrying this event cannot help", extra={"table": table, "error": error})
    metrics.add_metric(name=names.CDC_FAILED, unit=MetricUnit.Count, value=len(report.permanent_failures))
    accepted = sum(r.accepted for r in report.records)
    metrics.add_metric(name=names.SNAPSHOTS_PROCESSED, unit=MetricUnit.Count, value=accepted)


@logger.inject_lambda_context(clear_state=True)
@traced(patch=("botocore",))
@metrics.log_metrics
@event_source(data_class=S3Event)
def lambda_handler(event: S3Event, context: LambdaContext) -> dict[str, Any]:
    uses = _dependencies()
    keys = [unquote_plus(record.s3.get_object.key) for record in event.records]
    logger.info("cdc event", extra={"keys": keys})
    report = process_raw_keys(
        uses.store,
        uses.config,
        keys,
        catalog=uses.catalog,
        route=uses.route,
        engine=ArrowEngine(),
        iceberg=uses.iceberg,
    )
    _report_metrics(report)
    logger.info("cdc done", extra=report.summary())
    if report.failures:
        raise CdcBatchError(f"tables failed: {report.failures}")
    return report.summary()
