"""The core's stdlib loggers write through the Powertools JSON handler."""

from __future__ import annotations

import io
import json
import logging

from snapcdc import observability


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
