"""Property test of the file path: CSV in, Parquet out, snapshot Parquet as the next old side."""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snapcdc.engine import DiffResult, csv_input, diff_files

from tests.unit.engine.diff_model import Row, assert_diff_matches_model, rows_by_key, to_csv
from tests.unit.engine.test_diff_properties import COLUMNS, OBSERVED, SPEC, _as_text, _typed, snapshot_pairs


def _write_csv(path: Path, rows: list[Row], rng: random.Random) -> None:
    columns = list(COLUMNS)
    rng.shuffle(columns)  # column order may change between snapshots
    delimiter = rng.choice([",", ";"])
    path.write_bytes(to_csv(_as_text(rows), columns, delimiter, crlf=rng.random() < 0.5, bom=rng.random() < 0.5))


def _as_read_from_csv(rows: list[Row]) -> list[Row]:
    """A CSV cannot tell an empty string from a missing value: both are read as null."""
    return [{c: (None if v == "" else v) for c, v in r.items()} for r in rows]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(snapshot_pairs(), st.randoms(use_true_random=False), st.sampled_from([1, 48, csv_input.SEGMENT_BYTES]))
def test_csv_file_path_replays_to_new_snapshot(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    pair: tuple[list[Row], list[Row]],
    rng: random.Random,
    segment_bytes: int,
) -> None:
    # Given two CSV files (random delimiter, CRLF, BOM, column order; quoted separators and breaks),
    # parsed in segments of any size (a segment may start inside a quoted line break)
    monkeypatch.setattr(csv_input, "SEGMENT_BYTES", segment_bytes)
    old_rows, new_rows = (_as_read_from_csv(rows) for rows in pair)
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    _write_csv(folder / "old.csv", old_rows, rng)
    _write_csv(folder / "new.csv", new_rows, rng)
    # When the first is loaded, then the second diffed against the stored snapshot Parquet
    first = diff_files(old=None, new=folder / "old.csv", spec=SPEC, observed_at=OBSERVED, out_dir=folder / "1")
    second = diff_files(
        old=first.snapshot_path, new=folder / "new.csv", spec=SPEC, observed_at=OBSERVED, out_dir=folder / "2"
    )
    # Then the outputs on disk match the model, and the old CSV diffed directly gives the same changes
    old_state = rows_by_key(pq.read_table(first.full_load_path), SPEC.primary_key)  # type: ignore[arg-type]
    result = DiffResult(
        changes=pq.read_table(second.changes_path),
        snapshot=pq.read_table(second.snapshot_path),
        quarantine=None,
        stats=second.stats,
        schema=second.schema,
        schema_changes=second.schema_changes,
    )
    assert_diff_matches_model(old_state, _typed(new_rows), result, SPEC.primary_key)
    direct = diff_files(
        old=folder / "old.csv", new=folder / "new.csv", spec=SPEC, observed_at=OBSERVED, out_dir=folder / "3"
    )
    assert direct.stats == second.stats
    assert pq.read_table(direct.changes_path).equals(pq.read_table(second.changes_path))
