"""The console around the ``snapcdc`` commands: an argparse parser whose usage errors are one line,
the options every subcommand takes (``--debug``), the version, and where the pipeline's JSON log
lines go while a command runs."""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import sys
from collections.abc import Iterator
from typing import NoReturn

from snapcdc.cli_failure import EXIT_USAGE


class Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line: what was wrong, and where help is."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message}; see `{self.prog} --help`\n")


def common_options() -> Parser:
    """Options every subcommand takes (after its name too)."""
    parent = Parser(add_help=False)
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
    return parent


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as _installed

    try:
        return _installed("snapcdc")
    except PackageNotFoundError:
        return "unknown (not installed)"


class _Stderr(io.TextIOBase):
    """The process's standard error at the time of each write (a test's capture may stand in for it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _Discard(io.TextIOBase):
    def write(self, text: str) -> int:
        return len(text)


@contextlib.contextmanager
def pipeline_logs(debug: bool) -> Iterator[None]:
    """While a command runs, the pipeline's JSON log lines go to stderr with ``--debug`` and nowhere
    without it: stdout is the command's result, stderr its one-line failure."""
    from snapcdc.observability import logger

    handler = logger.registered_handler
    if not isinstance(handler, logging.StreamHandler):
        yield
        return
    previous = handler.setStream(_Stderr() if debug else _Discard())
    try:
        yield
    finally:
        handler.setStream(previous)
