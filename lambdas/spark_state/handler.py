"""Spark job state-change Lambda: an EventBridge "Glue Job State Change" of the stack's job (FAILED, TIMEOUT,
STOPPED or ERROR) in, the table's claim released and its run started again, or given up (logic:
:mod:`snapcdc.cdc.healing`).

Metrics per table (dimension ``table``): every failed run, every restart, and a given-up table, which alarms.
An unexpected error is raised: Lambda retries the event (the conditional put of the claim makes a retry
start nothing twice), then the dead-letter queue keeps it.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.data_classes import EventBridgeEvent, event_source
from aws_lambda_powertools.utilities.typing import LambdaContext
from snapcdc import metric_names as names
from snapcdc.cdc.healing import Healer, Healing
from snapcdc.lake.layout import Layout
from snapcdc.lake.store import S3Store
from snapcdc.observability import logger, publish_table_metrics, traced
from snapcdc.settings import SparkStateSettings, load_settings


@cache
def _healer() -> Healer:
    settings = load_settings(SparkStateSettings)
    s3 = boto3.client("s3", endpoint_url=settings.s3_endpoint_url)
    store = S3Store(s3, settings.bucket_name, Layout(settings.data_prefix))
    return Healer(store, boto3.client("glue"), settings.spark_job_name, settings.spark_max_restarts)


def _report_metrics(healing: Healing) -> None:
    if healing.table is None or healing.action == "not_a_failure":
        return
    publish_table_metrics(
        healing.table,
        {
            names.SPARK_RUNS_FAILED: 1,
            names.SPARK_RUNS_RESTARTED: int(healing.action == "restarted"),
            names.SPARK_RESTARTS_GIVEN_UP: int(healing.action == "given_up"),
        },
    )


@logger.inject_lambda_context(clear_state=True)
@traced(patch=("botocore",))
@event_source(data_class=EventBridgeEvent)
def lambda_handler(event: EventBridgeEvent, context: LambdaContext) -> dict[str, Any]:
    detail = event.detail
    healing = _healer().heal(str(detail.get("jobRunId")), str(detail.get("state")))
    _report_metrics(healing)
    logger.info("spark job run state handled", extra=healing.summary())
    return healing.summary()
