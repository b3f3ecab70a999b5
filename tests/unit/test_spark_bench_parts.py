"""The Spark bench's own parts (bench/spark_data.py, bench/spark_measure.py): the inputs hold the changes
they say they hold, and the measures read what Spark and /proc report."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
from snapcdc.engine import TableSpec, diff_files

from bench import spark_data
from bench.spark_measure import descendants, shuffle_totals, written_totals


def test_the_inputs_hold_the_changes_they_were_made_with(tmp_path: Path, monkeypatch) -> None:
    # Given a small table made in several chunks
    monkeypatch.setattr(spark_data, "CHUNK_ROWS", 3_000)
    made = spark_data.inputs(10_000, tmp_path / "data")
    # When the Lambda engine diffs the two snapshots
    spec = TableSpec(primary_key=(spark_data.KEY,), delimiter=spark_data.DELIMITER)
    first = diff_files(old=None, new=made.old, spec=spec, observed_at=datetime(2026, 1, 1, tzinfo=UTC),
                       out_dir=tmp_path / "first")  # fmt: skip
    outcome = diff_files(old=first.snapshot_path, new=made.new, spec=spec,
                         observed_at=datetime(2026, 1, 2, tzinfo=UTC), out_dir=tmp_path / "diff")  # fmt: skip
    # Then it finds exactly the inserts, updates and deletes the data was made with, and some of each
    assert (outcome.stats.inserts, outcome.stats.updates, outcome.stats.deletes) == (
        made.inserts, made.updates, made.deletes,
    )  # fmt: skip
    assert min(made.inserts, made.updates, made.deletes) > 0
    assert outcome.stats.rows_new == made.new_rows
    assert pq.read_table(first.snapshot_path).num_rows == 10_000


def test_the_inputs_are_made_once_and_the_same_everywhere(tmp_path: Path) -> None:
    # Given a size made in two folders
    one = spark_data.inputs(2_000, tmp_path / "one")
    two = spark_data.inputs(2_000, tmp_path / "two")
    # When it is asked for again
    again = spark_data.inputs(2_000, tmp_path / "one")
    # Then the files are the same bytes, and the cache answers with the same counts
    assert one.new.read_bytes() == two.new.read_bytes() and one.old.read_bytes() == two.old.read_bytes()
    assert again == one


def test_shuffle_totals_sum_every_finished_task(tmp_path: Path) -> None:
    # Given an event log with two finished tasks and other events
    def task(written: int, remote: int, local: int) -> dict:
        return {
            "Event": "SparkListenerTaskEnd",
            "Task Metrics": {
                "Executor Run Time": 1500,
                "Executor CPU Time": 10**9,
                "Shuffle Write Metrics": {"Shuffle Bytes Written": written, "Shuffle Records Written": 2},
                "Shuffle Read Metrics": {"Remote Bytes Read": remote, "Local Bytes Read": local},
            },
        }

    events = [{"Event": "SparkListenerApplicationStart"}, task(100, 0, 0), task(0, 60, 40)]
    (tmp_path / "app-1").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    # When the totals are read
    totals = shuffle_totals(tmp_path)
    # Then both tasks count
    assert (totals.bytes_written, totals.records_written, totals.bytes_read, totals.tasks) == (100, 4, 100, 2)
    assert totals.task_seconds == 3.0


def test_written_totals_count_each_outputs_part_files_and_skip_work_folders(tmp_path: Path) -> None:
    # Given two outputs' parts and a work folder's file
    for name, size in (("changes.parquet/part-00000.parquet", 10), ("changes.parquet/part-00001.parquet", 5),
                       ("snapshot.parquet/part-00000.parquet", 7), (".work-1/x.parquet", 99)):  # fmt: skip
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x" * size)
    # When they are counted
    totals = written_totals(tmp_path)
    # Then per output, files and bytes
    assert totals.per_output == {"changes": (2, 15), "snapshot": (1, 7)}
    assert (totals.files, totals.bytes) == (3, 22)


def test_descendants_follow_the_process_tree() -> None:
    # Given a process tree (pid: parent, name)
    tree = {1: (0, "init"), 10: (1, "python"), 11: (10, "bash"), 12: (11, "java"), 20: (1, "other")}
    # When the driver's descendants are listed
    found = descendants([10], tree)
    # Then its children's children too, never itself or others
    assert found == {11: "bash", 12: "java"}


def test_own_high_water_reads_a_driver_without_a_jvm() -> None:
    # Given a fresh Python process that starts no JVM (this test's process may hold one: a Spark test
    # ran in the same worker before it)
    code = "import json; from bench.spark_measure import own_high_water; print(json.dumps(own_high_water()))"
    # When it reads its own high-water marks
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=Path(__file__).parents[2]
    )
    marks = json.loads(done.stdout)
    # Then its Python process is counted and no JVM is
    assert marks["driver_python"] > 5 << 20
    assert marks["driver_jvm"] == 0
