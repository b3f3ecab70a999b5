"""One place for logging, tracing and metrics in the functions (AWS Lambda Powertools): Lambda only.

The Glue job never imports this module (Glue provides no Powertools): the core logs with stdlib loggers
(:mod:`snapcdc.logs`), which the functions route through the Powertools handler set up here.

Tracing (X-Ray) is :func:`traced`: the Powertools Tracer, and with it the X-Ray SDK, is built on a
handler's first call and only when tracing is on (in Lambda, not disabled), patching only the libraries
that function calls; importing a handler loads none of it (every scheduled run is a cold start).

Logs are structured JSON, the core's stdlib loggers (``snapcdc.*``) included; handlers add the
Lambda context and each table/snapshot is appended to every line while it is processed. Metrics
are CloudWatch EMF, one set per table, with the dimension ``table`` beside the Powertools
``service``; their names are in :mod:`snapcdc.metric_names`.
"""

from __future__ import annotations

import functools
import io
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers
from aws_lambda_powertools.metrics import EphemeralMetrics, MetricUnit
from aws_lambda_powertools.shared import constants
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

from snapcdc.logs import KeysFilter
from snapcdc.metric_names import DURATION_SECONDS

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

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


Handler = TypeVar("Handler", bound=Callable[..., Any])


def tracing_enabled() -> bool:
    """Whether the Powertools Tracer would trace: the rule of its ``Tracer._is_tracer_disabled``, read
    without building one (that imports the X-Ray SDK). Off when POWERTOOLS_TRACE_DISABLED is true, outside
    Lambda (no LAMBDA_TASK_ROOT) and under SAM CLI or Chalice, whose emulators have no X-Ray daemon."""
    if resolve_truthy_env_var_choice(env=os.getenv(constants.TRACER_DISABLED_ENV, "false")):
        return False
    if os.getenv(constants.SAM_LOCAL_ENV) or os.getenv(constants.CHALICE_LOCAL_ENV):
        return False
    return bool(os.getenv(constants.LAMBDA_TASK_ROOT_ENV))


@functools.cache
def _tracer(patch: tuple[str, ...]) -> Tracer | None:
    """The one Tracer of the process, on first use; X-Ray patches only ``patch`` (e.g. ``botocore``)."""
    if not tracing_enabled():
        return None
    from aws_lambda_powertools import Tracer

    return Tracer(patch_modules=patch)


def traced(*, patch: tuple[str, ...]) -> Callable[[Handler], Handler]:
    """Decorate a Lambda handler: an X-Ray subsegment around each call (Powertools'
    ``capture_lambda_handler``: cold start annotation, response and error as metadata) when tracing is
    on, a plain call otherwise. ``patch``: the libraries whose calls become subsegments."""

    def decorate(handler: Handler) -> Handler:
        @functools.cache
        def wrapped() -> Callable[..., Any]:
            tracer = _tracer(patch)
            return handler if tracer is None else tracer.capture_lambda_handler(handler)

        @functools.wraps(handler)
        def run(event: Any, context: Any) -> Any:
            return wrapped()(event, context)

        return cast("Handler", run)

    return decorate
