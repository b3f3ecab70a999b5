"""One place for logging, tracing and metrics (AWS Lambda Powertools).

Logs are structured JSON, the core's stdlib loggers (``snapcdc.*``) included; handlers add the
Lambda context and each table/snapshot is appended to every line while it is processed. Metrics
are CloudWatch EMF, one set per table, with the dimension ``table`` beside the Powertools
``service``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "snapcdc")

logger = Logger(name="%(name)s")  # every line names the logger that wrote it, kept through clear_state
# Modules that log with logging.getLogger(__name__) (the extract core, the Kaggle client) write
# through the same JSON handler, instead of the runtime's plain-text lines.
logging.getLogger("snapcdc")
copy_config_to_registered_loggers(source_logger=logger, include={"snapcdc"})
tracer = Tracer()
metrics = Metrics(namespace=NAMESPACE)

# Engine stats -> CloudWatch metric names (the dashboard and alarms use these names).
CDC_METRIC_NAMES = {
    "rows_new": "RowsRead",
    "inserts": "Inserts",
    "updates": "Updates",
    "deletes": "Deletes",
    "quarantined": "Quarantined",
    "updates_without_date_bump": "UpdatesWithoutDateBump",
}


def publish_table_metrics(table: str, counts: Mapping[str, float], seconds: float | None = None) -> None:
    """Emit one EMF blob of counts for ``table`` (dimension ``table``)."""
    table_metrics = EphemeralMetrics(namespace=NAMESPACE, service=os.environ.get("POWERTOOLS_SERVICE_NAME"))
    table_metrics.add_dimension(name="table", value=table)
    for name, value in counts.items():
        unit = MetricUnit.Bytes if name.endswith("Bytes") else MetricUnit.Count
        table_metrics.add_metric(name=name, unit=unit, value=value)
    if seconds is not None:
        table_metrics.add_metric(name="DurationSeconds", unit=MetricUnit.Seconds, value=seconds)
    table_metrics.flush_metrics()
