"""The engine as a package: its public face, its error policy, and its threads (none at import time,
none left running after a diff)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import snapcdc.engine
from snapcdc.engine import DeleteGuardError, InputError, TableSpec, diff_files
from snapcdc.errors import PermanentError

ENGINE_MODULES = [
    "api",
    "csv_input",
    "differ",
    "hash_columns",
    "hashing",
    "keys",
    "new_side",
    "old_side",
    "parquet_output",
    "schema",
    "sinks",
    "spec",
]
POOL_PREFIXES = ("hashing", "batch-stage", "old-side", "old-lookup", "parquet-writer", "csv-segment", "csv-reader")


IMPORT_ALL = f"""
import threading
from concurrent.futures import Executor
before = threading.active_count()
modules = [__import__(f"snapcdc.engine.{{name}}", fromlist=["_"]) for name in {ENGINE_MODULES!r}]
pools = [f"{{m.__name__}}.{{k}}" for m in modules for k, v in vars(m).items() if isinstance(v, Executor)]
print(before, threading.active_count(), ",".join(pools) or "-")
"""


def test_importing_the_engine_starts_no_thread_and_creates_no_pool() -> None:
    # Given a fresh interpreter; when every engine module is imported
    result = subprocess.run([sys.executable, "-c", IMPORT_ALL], capture_output=True, text=True, check=True, timeout=120)
    # Then the count of threads is unchanged, and no module holds a thread pool (one would start its
    # threads on first use and keep them for the life of the process)
    before, after, pools = result.stdout.split()
    assert before == after
    assert pools == "-"


def test_the_public_face_lists_what_callers_use() -> None:
    assert sorted(snapcdc.engine.__all__) == sorted(
        [
            "CDC_OPERATION",
            "CDC_TIMESTAMP",
            "KEY_HASH",
            "QUARANTINE_REASON",
            "ROW_HASH",
            "SOURCE_RECORD",
            "DeleteGuardError",
            "DiffOutcome",
            "DiffResult",
            "DiffStats",
            "InputError",
            "TableSpec",
            "data_only",
            "diff_files",
            "diff_tables",
            "has_cached_hashes",
        ]
    )
    assert all(hasattr(snapcdc.engine, name) for name in snapcdc.engine.__all__)


def test_the_engines_refusals_are_permanent_and_input_errors_stay_value_errors() -> None:
    assert issubclass(InputError, PermanentError)
    assert issubclass(InputError, ValueError)
    assert issubclass(DeleteGuardError, PermanentError)


def _pool_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(POOL_PREFIXES)]


@pytest.mark.parametrize("old_kind", ["csv", "snapshot"])
def test_a_diff_leaves_no_pool_thread_running(tmp_path: Path, old_kind: str) -> None:
    # Given an old side (a plain CSV, or a snapshot written by the engine) and a new CSV
    spec = TableSpec(primary_key=("id",), date_field="updated")
    observed = datetime(2026, 3, 1, tzinfo=UTC)
    old = tmp_path / "old.csv"
    old.write_text("id,n,updated\n" + "".join(f"{i},{i},2025-01-01\n" for i in range(3000)))
    new = tmp_path / "new.csv"
    new.write_text("id,n,updated\n" + "".join(f"{i},{i * 2},2025-01-02\n" for i in range(100, 3100)))
    if old_kind == "snapshot":
        old = diff_files(old=None, new=old, spec=spec, observed_at=observed, out_dir=tmp_path / "first").snapshot_path
    before = set(_pool_threads())
    # When diffed
    diff_files(old=old, new=new, spec=spec, observed_at=observed, out_dir=tmp_path / "out")
    # Then every pool the diff used is shut down: its threads end (a pool's thread may finish its
    # last task just after the diff returns, so wait a little)
    deadline = time.monotonic() + 10
    while set(_pool_threads()) - before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not set(_pool_threads()) - before
