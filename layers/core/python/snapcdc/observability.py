"""One place for logging, tracing and metrics in the functions (AWS Lambda Powertools): Lambda only.

The Glue job never imports this module (Glue provides no Powertools): the core logs with stdlib loggers
(:mod:`snapcdc.logs`), which the functions route through the Powertools handler set up here.

Logs are structured JSON, the core's stdlib loggers (``snapcdc.*``) included; handlers add the
Lambda context and each table/snapshot is appended to every line while it is processed. Metrics
are CloudWatch EMF, one set per table, with the dimension ``table`` beside the Powertools
``service``; their names are in :mod:`snapcdc.metric_names`.
"""

from __future__ import annotations

import io
import logging
import os
import sys
from collections.abc import Mapping
from typing import IO, cast

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit

from snapcdc.logs import KeysFilter
from snapcdc.metric_names import DURATION_SECONDS

NAMESPACE = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "snapcdc")


class _Stdout(io.TextIOBase):
    """The process's standard output at the time of each write, not at import (Lambda's runtime reads
    it; a test's capture or the demo's log file may stand in for it while a handler runs)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


# Every line names the logger that wrote it, kept through clear_state.
logger = Logger(name="%(name)s", stream=cast("IO[str]", _Stdout()))
# Modules that log with logging.getLogger(__name__) (the extract core, the Kaggle client) write
# through the same JSON handler, instead of the runtime's plain-text lines.
logging.getLogger("snapcdc")
copy_config_to_registered_loggers(source_logger=logger, include={"snapcdc"})
# The table and snapshot the core appends (snapcdc.logs.append_keys) go on every line of the handler.
logger.registered_handler.addFilter(KeysFilter())
tracer = Tracer()
metrics = Metrics(namespace=NAMESPACE)


def publish_table_metrics(table: str, counts: Mapping[str, float], seconds: float | None = None) -> None:
    """Emit one EMF blob of counts for ``table`` (dimension ``table``)."""
    table_metrics = EphemeralMetrics(namespace=NAMESPACE, service=os.environ.get("POWERTOOLS_SERVICE_NAME"))
    table_metrics.add_dimension(name="table", value=table)
    for name, value in counts.items():
        unit = MetricUnit.Bytes if name.endswith("Bytes") else MetricUnit.Count
        table_metrics.add_metric(name=name, unit=unit, value=value)
    if seconds is not None:
        table_metrics.add_metric(name=DURATION_SECONDS, unit=MetricUnit.Seconds, value=seconds)
    table_metrics.flush_metrics()
