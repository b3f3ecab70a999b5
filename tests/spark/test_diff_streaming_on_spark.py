"""Every named engine test of tests/unit/engine/test_diff_streaming.py, run again with ``diff_files`` and
``diff_tables`` replaced by the Spark engine (tests/spark/conftest.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from snapcdc.engine import TableSpec

from tests.unit.engine import test_diff_streaming
from tests.unit.engine.test_diff_streaming import *  # noqa: F403
from tests.unit.engine.test_diff_streaming import OBSERVED, _big_csv


@pytest.fixture(autouse=True)
def _spark_engine(on_spark: Any) -> None:
    on_spark(test_diff_streaming)


@pytest.mark.parametrize("failing", ["snapshot.parquet", "changes.parquet"])
def test_a_file_failing_while_the_snapshot_completes_beside_the_change_set_leaves_nothing(
    tmp_path: Path, failing: str
) -> None:
    """The engine's test of the same name injects the failure into the driver's Parquet writer; on Spark
    the files are written by the tasks, so here an output's place cannot be written (a file stands where
    the folder of its part files goes): the tasks fail, after writing their other outputs."""
    # Given a stored snapshot, a new file with changes, and an output that cannot be written
    spec = TableSpec(primary_key=("id",), date_field="at")
    first = test_diff_streaming.diff_files(
        old=None, new=_big_csv(tmp_path / "old.csv", 20_000), spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "1"
    )
    lines = (tmp_path / "old.csv").read_text().splitlines(keepends=True)
    new = tmp_path / "new.csv"
    new.write_text("".join(lines[:15_000] + [line.replace(",n", ",m") for line in lines[15_000:]]))
    (tmp_path / "2").mkdir()
    (tmp_path / "2" / failing).write_bytes(b"")
    # When diffed
    with pytest.raises(Exception, match=failing):
        test_diff_streaming.diff_files(
            old=first.snapshot_path, new=new, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "2"
        )
    # Then the output folder holds nothing the run wrote
    assert [p.name for p in (tmp_path / "2").rglob("*")] == [failing]
