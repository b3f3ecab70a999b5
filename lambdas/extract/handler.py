"""Extract Lambda: EventBridge scheduled event -> one Kaggle snapshot in ``raw/`` (logic: snapcdc.extract.stage)."""

from __future__ import annotations

import functools
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent
from aws_lambda_powertools.utilities.typing import LambdaContext
from snapcdc import metric_names as names
from snapcdc.config import load_config
from snapcdc.errors import PermanentError
from snapcdc.extract.kaggle import Deadline, KaggleOptions, KaggleSource, RetryPolicy, read_credentials
from snapcdc.extract.stage import ExtractReport, run_extract
from snapcdc.lake.layout import Layout, snapshot_id
from snapcdc.lake.store import S3Store
from snapcdc.observability import logger, metrics, publish_table_metrics, traced
from snapcdc.settings import ExtractSettings, load_settings


class EventError(PermanentError, ValueError):
    """The event is not an EventBridge scheduled event with a time. Permanent: a retry brings the same event."""


@functools.cache
def aws_client(service: str, endpoint_url: str | None, _env_endpoint: str | None = None) -> Any:
    """boto3 clients are slow to create: one per container. Settings and the config are read per
    invocation instead (cheap), so a test or the demo may change the environment between calls;
    AWS_ENDPOINT_URL, read by boto3 itself, is passed in as part of the key for the same reason."""
    return boto3.client(service, endpoint_url=endpoint_url)


def snapshot_of(event: dict[str, Any]) -> str:
    try:
        moment = datetime.fromisoformat(EventBridgeEvent(event).time.replace("Z", "+00:00"))
    except (KeyError, TypeError, ValueError, AttributeError):
        raise EventError(f"not an EventBridge scheduled event with a 'time': {json.dumps(event)[:300]}") from None
    return snapshot_id(moment)


def _emit(report: ExtractReport) -> None:
    metrics.add_metric(name=names.EXTRACTED_BYTES, unit=MetricUnit.Bytes, value=report.bytes_uploaded)
    metrics.add_metric(name=names.TABLES_UPLOADED, unit=MetricUnit.Count, value=len(report.uploaded))
    metrics.add_metric(name=names.SKIPPED_UNCHANGED, unit=MetricUnit.Count, value=len(report.unchanged))
    metrics.add_metric(name=names.TABLES_MISSING, unit=MetricUnit.Count, value=len(report.missing))
    metrics.add_metric(
        name=names.SKIPPED_UNCHANGED_VERSION, unit=MetricUnit.Count, value=int(report.status == "skipped_unchanged")
    )
    for table in report.tables:  # per-table series (dimension "table")
        publish_table_metrics(
            table.name,
            {
                names.EXTRACTED_BYTES: table.bytes if table.status == "uploaded" else 0,
                names.SKIPPED_UNCHANGED: int(table.status == "unchanged"),
                names.TABLES_MISSING: int(table.status == "missing"),
            },
        )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.EVENT_BRIDGE, clear_state=True)
@traced(patch=("botocore", "requests"))
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        snap = snapshot_of(event)
        env = load_settings(ExtractSettings)
        logger.append_keys(snapshot=snap)
        endpoints = (env.s3_endpoint_url, os.environ.get("AWS_ENDPOINT_URL"))
        store = S3Store(aws_client("s3", *endpoints), env.bucket_name, Layout(env.data_prefix))
        credentials = read_credentials(env.kaggle_secret_arn, aws_client("secretsmanager", *endpoints))
        work_dir = Path(env.work_dir)
        options = KaggleOptions(
            endpoint=env.kaggle_endpoint,
            read_timeout=env.kaggle_read_timeout_seconds,
            # Kaggle must be done in time for the uploads, before Lambda would kill the function.
            deadline=Deadline.for_lambda(context.get_remaining_time_in_millis(), env.upload_margin_seconds),
            retry=RetryPolicy(attempts=env.kaggle_max_attempts),
        )
        source = KaggleSource(credentials, work_dir, options)
        report = run_extract(
            store=store,
            config=load_config(env.pipeline_config),
            source=source,
            snap=snap,
        )
    except PermanentError as error:  # a retry of the same event cannot fix it: reported, not raised (no retry storm)
        logger.exception("extract failed; retrying this event cannot help", extra={"error_type": type(error).__name__})
        metrics.add_metric(name=names.EXTRACT_FAILED, unit=MetricUnit.Count, value=1)
        return {
            "status": "failed",
            "retryable": False,
            "error_type": type(error).__name__,
            "error": str(error),
        }
    except Exception as error:
        logger.exception("extract failed; Lambda retries the event", extra={"error_type": type(error).__name__})
        metrics.add_metric(name=names.EXTRACT_FAILED, unit=MetricUnit.Count, value=1)
        raise  # transient (a Kaggle outage or deadline, S3 throttling): Lambda retries the event later
    _emit(report)
    logger.info("extract finished", extra={"report": report.to_dict()})
    return report.to_dict()
