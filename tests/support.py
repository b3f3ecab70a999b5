"""Helpers shared by the test tiers (plain functions; fixtures live beside the tests that use them)."""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar

from snapcdc.config import TableConfig
from snapcdc.lake.store import S3Store

BUCKET = "snapcdc-test-data"

# What a Spark JVM started by a test process must hold: its Python workers keep the environment of the
# first session the process starts (later sessions reuse the JVM), and tasks read moto's S3 with boto3.
_SPARK_AWS_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def spark_process_environment() -> None:
    """Throwaway AWS credentials and a region in this process's environment, for every Spark fixture to
    call before its session starts. A session-scoped fixture runs before the per-test credentials are
    set (tests/conftest.py), so whichever starts the JVM first must set them (no real account is
    reachable either way)."""
    for name, value in _SPARK_AWS_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def csv_bytes(columns: Sequence[str], rows: Iterable[Sequence[object]], delimiter: str = ";") -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(["" if v is None else v for v in row] for row in rows)
    return buffer.getvalue().encode("utf-8")


def put_raw(store: S3Store, table: TableConfig, snap: str, body: bytes) -> str:
    key = store.layout.raw_key(table.name, snap, table.file)
    store.client.put_object(Bucket=store.bucket, Key=key, Body=body)
    return key


def object_versions(store: S3Store, prefix: str = "") -> dict[str, str]:
    """key -> ETag of every object: compares bucket states before and after a rerun."""
    return {
        item["Key"]: item["ETag"]
        for page in store.client.get_paginator("list_objects_v2").paginate(Bucket=store.bucket, Prefix=prefix)
        for item in page.get("Contents", [])
    }


class DiskBudget:
    """A folder whose file system has no room left, for this process: every file opened for writing
    under ``folder`` inside ``with`` is refused with ENOSPC (an audit hook; hooks cannot be removed,
    so one hook, installed once, serves every budget). ``refused`` lists the paths refused."""

    _budgets: ClassVar[dict[str, DiskBudget]] = {}
    _installed: ClassVar[bool] = False

    def __init__(self, folder: Path) -> None:
        self.folder = str(Path(folder).resolve())
        self.refused: list[str] = []

    def __enter__(self) -> DiskBudget:
        if not DiskBudget._installed:
            sys.addaudithook(DiskBudget._hook)
            DiskBudget._installed = True
        DiskBudget._budgets[self.folder] = self
        return self

    def __exit__(self, *exc_info: object) -> None:
        DiskBudget._budgets.pop(self.folder, None)

    @staticmethod
    def _hook(event: str, args: tuple[object, ...]) -> None:
        if event != "open" or not DiskBudget._budgets:
            return
        path, mode, flags = args
        if not isinstance(path, str | bytes | os.PathLike):
            return
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT)
        )
        if not writing:
            return
        target = os.path.abspath(os.fsdecode(path))
        for folder, budget in list(DiskBudget._budgets.items()):
            if target == folder or target.startswith(folder + os.sep):
                budget.refused.append(target)
                raise OSError(errno.ENOSPC, "No space left on device (test disk budget)", target)


@contextlib.contextmanager
def only_printed_environment(exports: list[str]) -> Iterator[None]:
    """The process's AWS environment replaced by the ``NAME=value`` pairs of ``exports`` (lines a user
    would paste), and restored exactly on exit (the embedded AWS's own variables included)."""
    names = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
    saved = dict(os.environ)
    try:
        for name in names:
            os.environ.pop(name, None)
        for line in exports:
            for pair in line.split():
                name, value = pair.split("=", 1)
                os.environ[name] = value
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
