"""Property test: the Lambda engine and the Spark engine give the same files, row for row and type for
type, on the same random tables (values that tempt a typer, duplicated and empty keys, columns added,
removed and widened, mass deletes), with the CSV cut into many segments."""

from __future__ import annotations

import csv
import io
import random
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snapcdc.engine import DeleteGuardError, InputError, TableSpec, csv_input, diff_files
from snapcdc.spark.engine import spark_diff_files

from tests.spark.conftest import in_engine_order

OBSERVED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
# Per column kind, the values a column of that kind holds; TEMPTING values sometimes slip in.
KINDS = {
    "int": ["1", "7", "42", "-3", "123456789", "0"],
    "float": ["1.5", "2.25", "-0.5", "3", "1e3"],
    "date": ["2025-01-01", "2024-02-29", "2025-12-31"],
    "timestamp": ["2025-01-01 10:00:00", "2025-07-16 09:36:45.831", "2025-01-01T00:00"],
    "bool": ["true", "false", "True", "0", "1"],
    "text": ["ana", "b;c", 'qu"ote', "line\nbreak", "x,y", "ção"],
}
TEMPTING = ["007", "-0", "9007199254740993", "1e-400", "nan", " 5", "2025-02-30", "0x10", "TRUE", "", "abc"]


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]], list[str], list[list[str]]]:
    rng = random.Random(draw(st.integers(0, 2**32)))
    kinds = [rng.choice(list(KINDS)) for _ in range(rng.randint(1, 4))]
    columns = ["id", *[f"c{i}" for i in range(len(kinds))]]
    outlier = draw(st.sampled_from([0.0, 0.0, 0.02, 0.2]))

    def value(kind: str) -> str:
        if rng.random() < outlier:
            return rng.choice(TEMPTING)
        return "" if rng.random() < 0.1 else rng.choice(KINDS[kind])

    def key() -> str:
        return "" if rng.random() < 0.02 else str(rng.randint(0, draw(st.sampled_from([30, 300]))))

    old = [[key(), *(value(k) for k in kinds)] for _ in range(draw(st.integers(0, 200)))]
    new = [list(row) for row in old if rng.random() < 0.8]
    for row in new:
        if rng.random() < 0.3 and len(row) > 1:
            at = rng.randrange(1, len(row))
            row[at] = value(kinds[at - 1])
    new += [[key(), *(value(k) for k in kinds)] for _ in range(draw(st.integers(0, 60)))]
    new_columns = list(columns)
    if draw(st.booleans()) and len(new_columns) > 2:  # a column removed
        drop = rng.randrange(1, len(new_columns))
        new_columns.pop(drop)
        new = [r[:drop] + r[drop + 1 :] for r in new]
    if draw(st.booleans()):  # a column added
        kind = rng.choice(list(KINDS))
        new_columns.append("added")
        new = [[*r, value(kind)] for r in new]
    return columns, old, new_columns, new


def _csv(path: Path, columns: list[str], rows: list[list[str]]) -> Path:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    path.write_text(out.getvalue(), encoding="utf-8")
    return path


def _run(diff: Any, old: Path | None, new: Path, spec: TableSpec, out: Path) -> Any:
    try:
        return diff(old=old, new=new, spec=spec, observed_at=OBSERVED, out_dir=out)
    except (InputError, DeleteGuardError) as refusal:
        return f"{type(refusal).__name__}: {refusal}"


def _same(engine: Any, spark: Any, primary_key: tuple[str, ...]) -> None:
    """The same counts, schemas and files; Spark's part files read together (a part holds a bucket of
    keys: their rows are put in the engine's order before the comparison, row for row)."""
    if isinstance(engine, str) or isinstance(spark, str):
        assert engine == spark
        return
    assert spark.stats == engine.stats
    assert spark.schema == engine.schema
    assert spark.schema_changes == engine.schema_changes
    for name in ("changes", "snapshot", "full_load", "quarantine"):
        mine, theirs = spark.files.get(name), engine.files.get(name)
        assert (mine is None) == (theirs is None), name
        if theirs is not None:
            assert mine is not None and sum(f.rows for f in mine) == theirs[0].rows, name
            expected = pq.read_table(theirs[0].location)
            parts = [pq.read_table(f.location) for f in mine]
            assert all(p.schema.equals(expected.schema, check_metadata=True) for p in parts), name
            found = in_engine_order(pa.concat_tables(parts), expected, primary_key)
            assert found.equals(expected), name


@pytest.mark.parametrize("segment_bytes", [700, csv_input.SEGMENT_BYTES])
@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=tables(), configured=st.booleans(), guard=st.sampled_from([0.3, 0.9]))
def test_both_engines_write_the_same_files(
    spark: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    segment_bytes: int,
    case: tuple[list[str], list[list[str]], list[str], list[list[str]]],
    configured: bool,
    guard: float,
) -> None:
    # Given two random snapshots of a table, read in segments of segment_bytes
    monkeypatch.setattr(csv_input, "SEGMENT_BYTES", segment_bytes)
    columns, old_rows, new_columns, new_rows = case
    types = {columns[1]: "int64"} if configured and len(columns) > 1 else {}
    spec = TableSpec(primary_key=("id",), column_types=types, max_delete_ratio=guard)
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    old, new = _csv(folder / "old.csv", columns, old_rows), _csv(folder / "new.csv", new_columns, new_rows)

    def on_spark(**kwargs: Any) -> Any:
        return spark_diff_files(spark, **kwargs)

    # When each engine loads the first and diffs the second against its own snapshot
    runs = {}
    for name, diff in (("engine", diff_files), ("spark", on_spark)):
        first = _run(diff, None, old, spec, folder / name / "1")
        second = None if isinstance(first, str) else _run(diff, first.snapshot_path, new, spec, folder / name / "2")
        runs[name] = (first, second)
    # Then both wrote the same files (or refused with the same message)
    _same(runs["engine"][0], runs["spark"][0], spec.primary_key)
    if runs["engine"][1] is not None or runs["spark"][1] is not None:
        _same(runs["engine"][1], runs["spark"][1], spec.primary_key)
