"""The Spark engine on a standalone cluster at 1M, 10M and 50M rows, measured (docs/scale.md).

    .venv/bin/python -m bench.spark_bench                      # make bench-spark: 1M, 10M, 50M
    .venv/bin/python -m bench.spark_bench --rows 1000000       # one size

A master and two workers on 127.0.0.1 (``snapcdc_dev.spark_cluster``: 1 core and 3 GB each, executors
of 2 GB heap, the rest for their Python workers), started once. Per size (``bench.spark_data``: the
demo's ``transacoes`` after one publisher cycle): a driver process (1 GB heap) loads the old CSV (the
first load), then a second one diffs the new CSV against that snapshot, the way the Glue job's next run
reads it (bucket by bucket). Each driver is measured from outside (``bench.spark_measure``): its Python
process's and its JVM's peak memory, the shuffle (Spark's event log), the files and bytes written. The
counts must be the ones the data was made with; up to 10M rows the Lambda engine diffs the same inputs
in a process of its own and both change sets and snapshots must hold the same rows.

Exit 1 when a driver's Python process peaks above 600 MiB, or when rows differ.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.engine_bench import DATA, ROOT
from bench.spark_data import DELIMITER, KEY, Inputs, inputs
from bench.spark_measure import (
    MIB,
    MemoryPeaks,
    MemorySampler,
    ShuffleTotals,
    WrittenTotals,
    own_high_water,
    shuffle_totals,
    written_totals,
)

SIZES = (1_000_000, 10_000_000, 50_000_000)
DRIVER_MEMORY = "1g"
EXECUTOR_MEMORY = "2g"
WORKER_MEMORY = "3g"
DRIVER_PYTHON_LIMIT_MIB = 600
COMPARE_MAX_ROWS = 10_000_000
OBSERVED = datetime(2026, 1, 5, 13, 0, tzinfo=UTC)
RESULTS = DATA / "spark-bench.json"


def _spec() -> Any:
    from snapcdc.engine import TableSpec

    return TableSpec(primary_key=(KEY,), delimiter=DELIMITER)


# -- in a driver process of its own -----------------------------------------------------------------
def drive(argv: list[str]) -> int:
    """One Spark run (``--old`` absent: a first load), its outcome as one JSON line on stdout."""
    parser = argparse.ArgumentParser(prog="spark_bench drive")
    parser.add_argument("--old", type=Path)
    parser.add_argument("--new", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from snapcdc.spark.engine import spark_diff_files
    from snapcdc.spark.session import SessionSettings, start_session

    began = time.perf_counter()
    spark = start_session(SessionSettings.from_environment(driver_memory=DRIVER_MEMORY), "snapcdc-bench")
    spark.sparkContext.setLogLevel("ERROR")
    session_seconds = time.perf_counter() - began
    began = time.perf_counter()
    outcome = spark_diff_files(spark, old=args.old, new=args.new, spec=_spec(), observed_at=OBSERVED, out_dir=args.out)
    seconds = time.perf_counter() - began
    report = {
        "seconds": seconds,
        "session_seconds": session_seconds,
        "stats": outcome.stats.as_dict(),
        "high_water": own_high_water(),
    }
    print(json.dumps(report), flush=True)
    spark.stop()
    return 0


# -- in a process of its own: the Lambda engine on the same inputs, and the rows compared -------------
def _sorted_rows(files: list[Path], by: list[str], columns: list[str] | None = None) -> Any:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pa.concat_tables([pq.read_table(f, columns=columns).replace_schema_metadata(None) for f in files])
    return table.take(pc.sort_indices(table, [(c, "ascending") for c in by]))


def compare(argv: list[str]) -> int:
    """``--old`` (the Spark first load's snapshot folder) and ``--new`` diffed by the Lambda engine; its
    change set and snapshot compared with the Spark run's in ``--spark-out``, as rows."""
    parser = argparse.ArgumentParser(prog="spark_bench compare")
    parser.add_argument("--old", type=Path, required=True)
    parser.add_argument("--new", type=Path, required=True)
    parser.add_argument("--spark-out", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    from snapcdc.engine import CDC_OPERATION, diff_files
    from snapcdc.engine.spec import KEY_HASH, ROW_HASH

    began = time.perf_counter()
    old = sorted(args.old.glob("*.parquet"))
    outcome = diff_files(old=old, new=args.new, spec=_spec(), observed_at=OBSERVED, out_dir=args.out)
    seconds = time.perf_counter() - began

    def parts(name: str) -> list[Path]:
        return sorted((args.spark_out / f"{name}.parquet").glob("*.parquet"))

    differences = []
    engine_changes = _sorted_rows([Path(f.location) for f in outcome.files["changes"]], [CDC_OPERATION, KEY])
    spark_changes = _sorted_rows(parts("changes"), [CDC_OPERATION, KEY])
    if not spark_changes.cast(engine_changes.schema).equals(engine_changes):
        differences.append(f"changes: {spark_changes.num_rows} rows on Spark, {engine_changes.num_rows} on Lambda")
    del engine_changes, spark_changes
    hashes = [KEY_HASH, ROW_HASH]
    engine_snapshot = _sorted_rows([Path(f.location) for f in outcome.files["snapshot"]], [KEY_HASH], hashes)
    spark_snapshot = _sorted_rows(parts("snapshot"), [KEY_HASH], hashes)
    if not spark_snapshot.equals(engine_snapshot):
        differences.append(f"snapshot: {spark_snapshot.num_rows} rows on Spark, {engine_snapshot.num_rows} on Lambda")
    report = {"seconds": seconds, "stats": outcome.stats.as_dict(), "differences": differences}
    print(json.dumps(report), flush=True)
    return 0


# -- the bench --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DriverRun:
    """A driver process's run: its diff call's seconds (the session's start apart), whole process."""

    seconds: float
    session_seconds: float
    process_seconds: float
    stats: dict[str, int]
    memory: MemoryPeaks
    shuffle: ShuffleTotals
    written: WrittenTotals


@dataclass(frozen=True)
class SizeResult:
    inputs: Inputs
    csv_bytes: int
    first_load: DriverRun
    diff: DriverRun
    lambda_seconds: float | None  # None: not compared (above COMPARE_MAX_ROWS)
    differences: list[str]

    def row(self) -> dict[str, Any]:
        diff = self.diff
        return {
            "rows": self.inputs.rows,
            "new_csv_mb": round(self.csv_bytes / 1e6),
            "first_load_s": round(self.first_load.seconds, 1),
            "diff_s": round(diff.seconds, 1),
            "diff_rows_per_s": round(self.inputs.new_rows / diff.seconds),
            "task_jvm_cpu_s": round(diff.shuffle.task_cpu_seconds, 1),  # the JVM side only, not Python
            "task_run_s": round(diff.shuffle.task_seconds, 1),
            "tasks": diff.shuffle.tasks,
            **diff.memory.as_mib(),
            "first_load_driver_python_mib": round(self.first_load.memory.driver_python / MIB),
            "shuffle_written_mb": round(diff.shuffle.bytes_written / 1e6, 1),
            "shuffle_read_mb": round(diff.shuffle.bytes_read / 1e6, 1),
            "files_written": diff.written.files,
            "bytes_written_mb": round(diff.written.bytes / 1e6, 1),
            "per_output": {k: {"files": f, "mb": round(b / 1e6, 1)} for k, (f, b) in diff.written.per_output.items()},
            "first_load_files": self.first_load.written.files,
            "first_load_mb": round(self.first_load.written.bytes / 1e6, 1),
            "lambda_s": None if self.lambda_seconds is None else round(self.lambda_seconds, 1),
            "same_rows": None if self.lambda_seconds is None else not self.differences,
            "differences": self.differences,
            "stats": diff.stats,
        }


def _log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def _run(command: list[str], env: dict[str, str], log: Path, sampler: MemorySampler | None) -> dict[str, Any]:
    """A bench process (``python -m bench.spark_bench ...``), its one JSON line back."""
    with log.open("w") as errors:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.spark_bench", *command],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        if sampler is not None:
            sampler.driver = process.pid
            sampler.start()
        out, _ = process.communicate()
        if sampler is not None:
            sampler.stop()
    if process.returncode != 0:
        raise RuntimeError(f"{command[0]} failed ({process.returncode}): {log.read_text()[-3000:]}")
    return dict(json.loads(out.strip().splitlines()[-1]))


def _driver_run(cluster: Any, old: Path | None, new: Path, out: Path, work: Path) -> DriverRun:
    events = work / f"events-{out.name}"
    env = {
        **cluster.driver_env(executor_memory=EXECUTOR_MEMORY, driver_memory=DRIVER_MEMORY),
        "SNAPCDC_SPARK_EVENT_LOG": str(events),
    }
    command = ["drive", "--new", str(new), "--out", str(out), *(["--old", str(old)] if old else [])]
    sampler = MemorySampler(driver=0, workers=cluster.worker_pids)
    began = time.perf_counter()
    report = _run(command, env, work / f"{out.name}.log", sampler)
    process_seconds = time.perf_counter() - began
    cluster.remove_app_folders()  # the executors' copies of the shipped inputs (disk space)
    peaks = sampler.peaks
    peaks.driver_python = max(peaks.driver_python, report["high_water"]["driver_python"])
    peaks.driver_jvm = max(peaks.driver_jvm, report["high_water"]["driver_jvm"])
    return DriverRun(
        report["seconds"],
        report["session_seconds"],
        process_seconds,
        report["stats"],
        peaks,
        shuffle_totals(events),
        written_totals(out),
    )


def _size(cluster: Any, data: Inputs, compare_max: int) -> SizeResult:
    with tempfile.TemporaryDirectory(dir=DATA, prefix=f"spark-bench-{data.rows}-") as folder:
        work = Path(folder)
        _log(f"{data.rows:,} rows: first load")
        first = _driver_run(cluster, None, data.old, work / "first", work)
        for output in ("changes", "full_load"):  # counted; only the snapshot is read again (disk space)
            shutil.rmtree(work / "first" / f"{output}.parquet", ignore_errors=True)
        _log(f"{data.rows:,} rows: first load {first.seconds:.1f} s; diff")
        diff = _driver_run(cluster, work / "first" / "snapshot.parquet", data.new, work / "diff", work)
        _log(f"{data.rows:,} rows: diff {diff.seconds:.1f} s")
        wanted = {"inserts": data.inserts, "updates": data.updates, "deletes": data.deletes}
        found = {name: diff.stats[name] for name in wanted}
        differences = [] if found == wanted else [f"counts {found}, the data was made with {wanted}"]
        lambda_seconds = None
        if data.rows <= compare_max:
            _log(f"{data.rows:,} rows: the Lambda engine")
            command = ["compare", "--old", str(work / "first" / "snapshot.parquet"), "--new", str(data.new),
                       "--spark-out", str(work / "diff"), "--out", str(work / "lambda")]  # fmt: skip
            report = _run(command, dict(os.environ), work / "lambda.log", None)
            lambda_seconds = report["seconds"]
            differences += report["differences"]
            if report["stats"] != diff.stats:
                differences.append(f"stats: Lambda {report['stats']}, Spark {diff.stats}")
        return SizeResult(data, data.new.stat().st_size, first, diff, lambda_seconds, differences)


def _mib(value: int) -> str:
    return f"{value:,} MiB"


def table(rows: list[dict[str, Any]]) -> str:
    """The results as the Markdown table docs/scale.md quotes."""
    lines = [
        "| rows | new CSV | first load | diff | diff rows/s | driver Python peak | driver JVM peak "
        "| executors peak | shuffle written | files written | bytes written | Lambda engine | same rows |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        same = "not compared" if r["same_rows"] is None else ("yes" if r["same_rows"] else "**no**")
        lambda_s = "-" if r["lambda_s"] is None else f"{r['lambda_s']} s"
        lines.append(
            f"| {r['rows'] / 1e6:g}M | {r['new_csv_mb']:,} MB | {r['first_load_s']} s | {r['diff_s']} s "
            f"| {r['diff_rows_per_s']:,} | {_mib(r['driver_python_mib'])} | {_mib(r['driver_jvm_mib'])} "
            f"| {_mib(r['executors_mib'])} | {r['shuffle_written_mb']:,} MB | {r['files_written']} "
            f"| {r['bytes_written_mb']:,} MB | {lambda_s} | {same} |"
        )
    return "\n".join(lines)


def failures(rows: list[dict[str, Any]], limit_mib: int) -> list[str]:
    found = []
    for r in rows:
        for peak in ("driver_python_mib", "first_load_driver_python_mib"):
            if r[peak] > limit_mib:
                found.append(f"{r['rows']:,} rows: {peak} {r[peak]} > {limit_mib}")
        found += [f"{r['rows']:,} rows: {d}" for d in r["differences"]]
    return found


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["drive"]:
        return drive(argv[1:])
    if argv[:1] == ["compare"]:
        return compare(argv[1:])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="table size (repeatable; default 1M, 10M, 50M)")
    parser.add_argument("--compare-max", type=int, default=COMPARE_MAX_ROWS, help="the Lambda engine up to this")
    args = parser.parse_args(argv)
    from snapcdc_dev.spark_cluster import WorkerShape, standalone_cluster

    sizes = args.rows or list(SIZES)
    started, load_before = datetime.now(UTC), os.getloadavg()
    data = []
    for rows in sizes:
        _log(f"{rows:,} rows: inputs")
        data.append(inputs(rows))
    results: list[dict[str, Any]] = []

    def machine() -> dict[str, Any]:
        return {
            "date": f"{started:%Y-%m-%d %H:%M} UTC",
            "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
            "load_before": [round(v, 1) for v in load_before],
            "load_after": [round(v, 1) for v in os.getloadavg()],
            "cluster": f"2 workers x 1 core, {WORKER_MEMORY} each (executor heap {EXECUTOR_MEMORY}); "
            f"driver heap {DRIVER_MEMORY}",
            "minutes": round((datetime.now(UTC) - started).total_seconds() / 60, 1),
        }

    shape = WorkerShape(workers=2, cores=1, memory=WORKER_MEMORY)
    with (
        tempfile.TemporaryDirectory(dir=DATA, prefix="spark-cluster-") as root,
        standalone_cluster(Path(root), shape) as cluster,
    ):
        for made in data:
            results.append(_size(cluster, made, args.compare_max).row())
            print(json.dumps(results[-1]), flush=True)
            RESULTS.write_text(json.dumps({**machine(), "rows": results}, indent=1))  # each size as it ends
    print(json.dumps(machine()))
    print(table(results))
    problems = failures(results, DRIVER_PYTHON_LIMIT_MIB)
    for problem in problems:
        print(f"FAIL {problem}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
