"""The core's logging without the Lambda runtime: stdlib loggers (``logging.getLogger(__name__)``) under
``snapcdc``, the table and snapshot being processed appended to every line, JSON lines out.

The functions route these loggers through Powertools' JSON handler (:mod:`snapcdc.observability`, Lambda
only); the Glue job, which has no Powertools, calls :func:`write_json_lines` and writes the same keys with
the standard library alone. Either way :class:`KeysFilter` adds the keys of :func:`append_keys`.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar, Token
from datetime import UTC, datetime
from typing import IO, Any

# The keys of the table snapshot in progress (a context variable: per thread, never shared by two runs).
_KEYS: ContextVar[dict[str, Any]] = ContextVar("snapcdc_log_keys", default={})  # noqa: B039 (never mutated)
# What every LogRecord has: anything else on a record is a key passed with ``extra=`` or appended.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def append_keys(**keys: Any) -> Token[dict[str, Any]]:
    """Adds ``keys`` to every line logged until :func:`reset_keys` is given the returned token."""
    return _KEYS.set({**_KEYS.get(), **keys})


def reset_keys(token: Token[dict[str, Any]]) -> None:
    _KEYS.reset(token)


class KeysFilter(logging.Filter):
    """Puts the appended keys on each record that passes a handler (a key given with ``extra=`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _KEYS.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonLines(logging.Formatter):
    """One JSON object per line: time, level, logger name, message, then every extra key."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "name": record.name,
            "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in _RECORD_FIELDS})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def write_json_lines(stream: IO[str] | None = None, level: int = logging.INFO) -> logging.Handler:
    """Sends the ``snapcdc`` loggers to ``stream`` (standard output) as JSON lines, and only there; for the
    processes that have no Powertools (the Glue job). Calling it again replaces the handler it added."""
    package = logging.getLogger("snapcdc")
    for handler in [h for h in package.handlers if isinstance(h.formatter, JsonLines)]:
        package.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonLines())
    handler.addFilter(KeysFilter())
    package.addHandler(handler)
    package.setLevel(level)
    package.propagate = False
    return handler
