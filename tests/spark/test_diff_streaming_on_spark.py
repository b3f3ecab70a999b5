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


# Not a Spark test: ``keep_snapshot`` is an option of the Lambda engine's diff_files only (what
# `snapcdc diff` uses without --snapshot-out); the Spark engine's tasks always write the snapshot
# its next run reads (`snapcdc diff --engine spark` writes it in its work folder and moves out only
# the change set and the quarantine, and the snapshot when --snapshot-out asks for it).
test_without_the_snapshot_kept_the_change_set_is_the_same_and_only_it_is_written = None


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


@pytest.mark.parametrize("colliding_key_hash", [False, True], ids=["distinct-hashes", "every-key-hash-collides"])
def test_an_old_csv_with_duplicated_keys_diffs_as_its_accepted_snapshot_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, colliding_key_hash: bool
) -> None:
    """The engine's test of the same name, but the two routes' change sets compared as rows, not in file
    order: on Spark a change set is a bucket's part files, and the adapter puts each run's rows in the
    Lambda engine's order for that run's own inputs, which (with every key hash equal) follows the old
    side's row order, and the two routes' old sides are different files."""
    # Given an old CSV whose keys k00005 and k04000 occur twice (in one batch and across batches)
    if colliding_key_hash:
        monkeypatch.setattr(
            test_diff_streaming.hashing,
            "key_hash",
            lambda table, columns, pool=None: test_diff_streaming.np.zeros(table.num_rows, dtype="uint64"),
        )
    rows = [f"k{i:05d},{i},2025-01-01 00:00:00" for i in range(6_000)]
    old_rows = [*rows[:6], "k00005,555,2025-01-02 00:00:00", *rows[6:], "k04000,444,2025-01-02 00:00:00"]
    old = tmp_path / "old.csv"
    old.write_text("id,qty,at\n" + "\n".join(old_rows) + "\n")
    # and a new CSV that keeps k00005 (changed), drops k04000 and k00001, updates k00002
    new_rows = [r for r in rows if not r.startswith(("k04000", "k00001"))]
    new_rows[new_rows.index(rows[2])] = "k00002,22,2025-01-03 00:00:00"
    new_rows[new_rows.index(rows[5])] = "k00005,50,2025-01-03 00:00:00"
    new = tmp_path / "new.csv"
    new.write_text("id,qty,at\n" + "\n".join(new_rows) + "\n")
    spec = TableSpec(primary_key=("id",), date_field="at")
    diff_files = test_diff_streaming.diff_files
    # When diffed against the old CSV directly, and against the snapshot the old CSV is accepted as
    direct = diff_files(old=old, new=new, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "direct")
    accepted = diff_files(old=None, new=old, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "accepted")
    stored = diff_files(
        old=accepted.snapshot_path, new=new, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "stored"
    )

    def by_key(path: Path) -> Any:
        table = test_diff_streaming.pq.read_table(path)
        return table.sort_by([("id", "ascending")])

    # Then the duplicated keys are not part of the old side: k00005 is an insert, k04000 no delete
    changes = by_key(direct.changes_path)
    assert list(zip(changes["id"].to_pylist(), changes["_cdc_operation"].to_pylist(), strict=True)) == [
        ("k00001", "D"),
        ("k00002", "U"),
        ("k00005", "I"),
    ]
    assert direct.stats.rows_old == 6_000 - 2 == accepted.stats.rows_snapshot
    # And both routes give the same change set (as rows), counts and snapshot
    assert direct.stats == stored.stats
    assert changes.equals(by_key(stored.changes_path))
    assert (
        test_diff_streaming._data(direct.snapshot_path)
        .sort_by([("id", "ascending")])
        .equals(test_diff_streaming._data(stored.snapshot_path).sort_by([("id", "ascending")]))
    )


def test_deleted_rows_come_back_whole_from_a_snapshot_storing_text_as_a_dictionary(tmp_path: Path) -> None:
    """The engine's test of the same name: on Spark the snapshot's row groups are the tasks' Parquet
    writer's (one per part file at this size), so only the dictionary-encoded text is a precondition."""
    # Given a cached snapshot, written by the Spark tasks, whose repetitive text column is dictionary-encoded
    test_diff_streaming._deleted_rows_come_back_whole(tmp_path, row_groups_at_least=1)
