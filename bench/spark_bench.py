"""Local Spark against the Lambda engine on the benchmark's table (docs/scale.md).

    .venv/bin/python -m bench.spark_bench --rows 1000000 --rows 5000000

For each size: the old CSV loaded once by the engine (its snapshot Parquet is the old side of both),
then the new CSV diffed against it by the engine (this process) and by the Spark engine on local Spark
(``local[N]``, the Glue job's code), each timed from call to files written; the two change sets and
snapshots are compared. Spark's session start is reported apart.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq

from bench.engine_bench import DATA, DATE, PK, generate

OBSERVED = datetime(2026, 1, 1, tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="table size (repeatable)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2, help="local Spark cores")
    args = parser.parse_args(argv)
    from snapcdc.engine import TableSpec, diff_files
    from snapcdc.spark.engine import spark_diff_files
    from snapcdc.spark.session import local_session

    spec = TableSpec(primary_key=(PK,), date_field=DATE)
    started = time.perf_counter()
    spark = local_session(cores=args.cores, app="snapcdc-bench")
    spark.sparkContext.setLogLevel("ERROR")
    session_seconds = time.perf_counter() - started
    results = []
    for rows in args.rows or [1_000_000]:
        old, new = generate(rows)
        with tempfile.TemporaryDirectory(dir=DATA) as folder:
            work = Path(folder)
            first = diff_files(old=None, new=old, spec=spec, observed_at=OBSERVED, out_dir=work / "first")
            timings = {}
            outcomes = {}
            for name in ("lambda_engine", "spark_warmup", "spark_local"):
                out = work / name
                began = time.perf_counter()
                if name == "lambda_engine":
                    outcomes[name] = diff_files(
                        old=first.snapshot_path, new=new, spec=spec, observed_at=OBSERVED, out_dir=out
                    )
                else:
                    outcomes[name] = spark_diff_files(
                        spark, old=first.snapshot_path, new=new, spec=spec, observed_at=OBSERVED, out_dir=out
                    )
                timings[name] = time.perf_counter() - began
            engine, mine = outcomes["lambda_engine"], outcomes["spark_local"]
            same = (
                engine.stats == mine.stats
                and pq.read_table(engine.changes_path).equals(pq.read_table(mine.changes_path))
                and pq.read_table(engine.snapshot_path).equals(pq.read_table(mine.snapshot_path))
            )
            results.append(
                {
                    "rows": rows,
                    "csv_mb": round(new.stat().st_size / 1e6, 1),
                    "lambda_engine_s": round(timings["lambda_engine"], 1),
                    "spark_local_s": round(timings["spark_local"], 1),
                    "spark_first_call_s": round(timings["spark_warmup"], 1),
                    "same_files": same,
                    "changes": {k: engine.stats.as_dict()[k] for k in ("inserts", "updates", "deletes")},
                }
            )
            print(json.dumps(results[-1]), flush=True)
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    print(json.dumps({"machine": machine, "spark_cores": args.cores, "session_start_s": round(session_seconds, 1)}))
    spark.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
