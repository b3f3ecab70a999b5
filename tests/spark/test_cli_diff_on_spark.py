"""`snapcdc diff --engine spark`: every test of `snapcdc diff` (tests/unit/test_cli_diff.py) again,
with the flag added, and the two engines' files compared."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from snapcdc import cli

from tests.unit import test_cli_diff
from tests.unit.test_cli_diff import *  # noqa: F403


@pytest.fixture(autouse=True)
def _engine_flag(spark: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def main(argv: Sequence[str] | None = None) -> int:
        return cli.main([*(argv or []), "--engine", "spark"])

    monkeypatch.setattr(test_cli_diff, "main", main)


def test_diff_engine_spark_writes_the_files_the_lambda_engine_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given an old and a new snapshot with every kind of change, a quarantined row and a widened column
    (tmp_path / "old.csv").write_text("id,name,n\n1,a,1\n2,b,2\n3,c,3\n")
    (tmp_path / "new.csv").write_text("id,name,n\n1,a,1\n2,B,2.5\n4,d,4\n4,e,5\n")
    summaries = {}
    for engine in ("lambda", "spark"):
        # When diffed by each engine with the same flags
        out = tmp_path / engine / "changes.parquet"
        code = cli.main(["diff", "--old", str(tmp_path / "old.csv"), "--new", str(tmp_path / "new.csv"),
                         "--pk", "id", "--observed-at", "2026-01-01T00:00:00Z", "--out", str(out),
                         "--snapshot-out", str(out.with_name("snapshot.parquet")), "--engine", engine])  # fmt: skip
        assert code == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        summaries[engine] = {k: v for k, v in summary.items() if k not in ("seconds", "out", "quarantine")}
    # Then the same summary and the same rows (Spark's outputs are folders of part files, a bucket of
    # keys each: the order of rows across them is not part of the contract)
    assert summaries["spark"] == summaries["lambda"]
    for name in ("changes.parquet", "changes.quarantine.parquet", "snapshot.parquet"):
        assert (tmp_path / "spark" / name).is_dir() and list((tmp_path / "spark" / name).glob("part-*.parquet")), name
        spark, engine = pq.read_table(tmp_path / "spark" / name), pq.read_table(tmp_path / "lambda" / name)
        assert _sorted(spark).equals(_sorted(engine)), name


def _sorted(table: pa.Table) -> pa.Table:
    return table.take(
        pc.sort_indices(table, [(c, "ascending") for c in ("id", "_source_record") if c in table.column_names])
    )
