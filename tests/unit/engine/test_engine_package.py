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
    "arrow_numpy",
    "cdc_columns",
    "csv_input",
    "differ",
    "hash_columns",
    "hash_index",
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


DIFF_IN_A_FRESH_PROCESS = """
import sys
from datetime import UTC, datetime
from pathlib import Path
from snapcdc.engine import TableSpec, diff_files
folder = Path(sys.argv[1])
spec = TableSpec(primary_key=("id",), date_field="updated")
observed = datetime(2026, 3, 1, tzinfo=UTC)
old = {"csv": folder / "old.csv", "snapshot": folder / "old.parquet", "none": None}[sys.argv[2]]
outcome = diff_files(old=old, new=folder / "new.csv", spec=spec, observed_at=observed, out_dir=folder / sys.argv[2])
lazy = [name for name in ("pandas", "numpy.ma") if name in sys.modules]
print(outcome.stats.inserts + outcome.stats.updates + outcome.stats.deletes, ",".join(lazy) or "-")
"""


@pytest.mark.parametrize("old_kind", ["csv", "snapshot", "none"])
def test_a_diff_does_not_import_pandas_or_numpy_ma(tmp_path: Path, old_kind: str) -> None:
    # Given a new CSV with typed columns (ints, floats, text, bools, timestamps, a date field; a
    # repeating text column with empty fields, hashed per distinct value with nulls among the codes)
    # and an old side of each kind: a plain CSV, the previous snapshot, none (a first load)
    spec = TableSpec(primary_key=("id",), date_field="updated")
    header = "id,n,x,name,channel,flag,updated\n"
    channels = ("app", "web", "")
    (tmp_path / "old.csv").write_text(
        header
        + "".join(f"{i},{i},{i / 4},n{i % 7},{channels[i % 3]},{i % 2 == 0},2025-01-01 10:00:00\n" for i in range(3000))
    )
    (tmp_path / "new.csv").write_text(
        header
        + "".join(
            f"{i},{i * 2},{i / 4},n{i % 7},{channels[i % 3]},true,2025-01-02 10:00:00\n" for i in range(100, 3100)
        )
    )
    first = diff_files(old=None, new=tmp_path / "old.csv", spec=spec, observed_at=datetime.now(UTC), out_dir=tmp_path)
    first.snapshot_path.rename(tmp_path / "old.parquet")
    # When diffed in a fresh interpreter (pyarrow imports pandas the first time it converts a Python
    # or numpy object the pandas-aware way: a cold start's 0.3-0.4 s; np.unique imports numpy.ma)
    done = subprocess.run(
        [sys.executable, "-c", DIFF_IN_A_FRESH_PROCESS, str(tmp_path), old_kind],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    changes, imported = done.stdout.split()
    # Then the diff found its changes without importing pandas or numpy.ma
    assert int(changes) > 0
    assert imported == "-"
