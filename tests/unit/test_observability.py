"""The core's stdlib loggers write through the Powertools JSON handler; tracing is on when Powertools says so."""

from __future__ import annotations

import io
import itertools
import json
import logging

import pytest
from aws_lambda_powertools.tracing.tracer import Tracer
from snapcdc import observability

# Each variable Powertools' Tracer reads to decide whether it traces, with values that matter to it.
TRACING_ENVIRONMENTS = list(
    itertools.product(
        [None, "true", "false", "1", "0"],  # POWERTOOLS_TRACE_DISABLED
        [None, "/var/task"],  # LAMBDA_TASK_ROOT
        [None, "true"],  # AWS_SAM_LOCAL
        [None, "true"],  # AWS_CHALICE_CLI_MODE
    )
)


def test_a_core_module_logger_writes_powertools_json_lines() -> None:
    # Given the logging set up by the module both handlers import, its output caught in a buffer
    package = logging.getLogger("snapcdc")
    # (a test that ran the Glue job's code in this process may have added the job's own JSON handler)
    handler = observability.logger.handlers[0]
    assert handler in package.handlers
    assert isinstance(handler, logging.StreamHandler)
    caught = io.StringIO()
    previous = handler.setStream(caught)
    try:
        # When a core module logs the way snapcdc.extract.stage and snapcdc.extract.kaggle.retry do
        logging.getLogger("snapcdc.extract.kaggle.retry").warning("attempt %d of %d failed", 1, 4)
    finally:
        handler.setStream(previous)  # type: ignore[arg-type]
    # Then one JSON line, named after the module, and nothing passed on to the root logger's handlers
    lines = caught.getvalue().splitlines()
    assert len(lines) == 1
    line = json.loads(lines[0])
    assert (line["level"], line["name"]) == ("WARNING", "snapcdc.extract.kaggle.retry")
    assert line["message"] == "attempt 1 of 4 failed"
    assert package.propagate is False


@pytest.mark.parametrize(("disabled", "task_root", "sam_local", "chalice"), TRACING_ENVIRONMENTS)
def test_tracing_is_on_exactly_when_the_powertools_tracer_would_trace(
    monkeypatch: pytest.MonkeyPatch,
    disabled: str | None,
    task_root: str | None,
    sam_local: str | None,
    chalice: str | None,
) -> None:
    # Given an environment
    for name, value in [
        ("POWERTOOLS_TRACE_DISABLED", disabled),
        ("LAMBDA_TASK_ROOT", task_root),
        ("AWS_SAM_LOCAL", sam_local),
        ("AWS_CHALICE_CLI_MODE", chalice),
    ]:
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)
    # When asked whether to trace, without building a Tracer
    enabled = observability.tracing_enabled()
    # Then the answer is the Powertools Tracer's own (a Powertools upgrade that changes its rule fails here)
    assert enabled is (not Tracer._is_tracer_disabled())
