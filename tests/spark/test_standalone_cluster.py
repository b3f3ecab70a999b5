"""`snapcdc diff --engine spark` on a standalone cluster (a master and two workers on 127.0.0.1, each
with its own working directory; tests/spark/cluster.py): the driver is given relative paths, the
executors run elsewhere, and the change set, quarantine and snapshot hold the rows the Lambda engine
writes."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from snapcdc import cli

from tests.spark.cluster import StandaloneCluster

ARGS = ["--pk", "id", "--date-field", "updated", "--observed-at", "2026-01-01T00:00:00Z"]


def _tables(folder: Path, rows: int) -> None:
    chance = random.Random(5)
    old = [(i, chance.choice("abc"), chance.randint(0, 999), f"2025-01-{1 + i % 28:02d}") for i in range(rows)]
    new = [r if chance.random() < 0.9 else (r[0], "z", r[2] + 1, "2025-02-01") for r in old if chance.random() < 0.95]
    new += [(rows + i, "n", i, "2025-02-01") for i in range(rows // 20)]
    for name, table in (("old.csv", old), ("new.csv", new)):
        lines = ["id,status,n,updated", *(",".join(map(str, r)) for r in table)]
        if name == "new.csv":
            lines.append("x-not-an-int,a,1,2025-02-01")  # a bad key: widens id to text, no quarantine
            lines.append(f"{rows + 1},dup,1,2025-02-01")  # a duplicated key: quarantined
        (folder / name).write_text("\n".join(lines) + "\n")


def _sorted(table: pa.Table) -> pa.Table:
    columns = [c for c in ("id", "_source_record") if c in table.column_names]
    return table.take(pc.sort_indices(table, [(c, "ascending") for c in columns]))


def test_both_engines_give_the_same_files_on_a_standalone_cluster(
    standalone_cluster: StandaloneCluster, tmp_path: Path
) -> None:
    # Given an old and a new snapshot in the driver's working directory, named by relative paths
    _tables(tmp_path, 20_000)
    # When the Spark engine diffs them on the cluster (a driver process of its own) and the Lambda engine here
    command = [sys.executable, "-c", "import sys; from snapcdc.cli import main; sys.exit(main(sys.argv[1:]))",
               "diff", "--old", "old.csv", "--new", "new.csv", *ARGS, "--out", "spark/changes.parquet",
               "--snapshot-out", "spark/snapshot.parquet", "--engine", "spark"]  # fmt: skip
    done = subprocess.run(
        command, cwd=tmp_path, env=standalone_cluster.driver_env(), capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    lambda_out = tmp_path / "lambda" / "changes.parquet"
    snapshot_out = lambda_out.with_name("snapshot.parquet")
    code = cli.main(["diff", "--old", str(tmp_path / "old.csv"), "--new", str(tmp_path / "new.csv"), *ARGS,
                     "--out", str(lambda_out), "--snapshot-out", str(snapshot_out)])  # fmt: skip
    assert code == 0
    # Then the executors ran on the workers (each in its own directory) and the counts are the same
    for worker in standalone_cluster.workers:
        assert list(worker.glob("app-*/*/stderr")), f"no executor ran in {worker}"
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["updates"] > 0 and summary["deletes"] > 0 and summary["quarantined"] == 2
    # And the same rows in every file
    for name in ("changes.parquet", "changes.quarantine.parquet", "snapshot.parquet"):
        spark, engine = pq.read_table(tmp_path / "spark" / name), pq.read_table(tmp_path / "lambda" / name)
        assert _sorted(spark).equals(_sorted(engine)), name
