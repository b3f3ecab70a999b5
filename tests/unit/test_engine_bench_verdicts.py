"""The engine bench's verdicts: one line per ratio target and per peak-memory bound that applies."""

from __future__ import annotations

from typing import Any

from bench.engine_bench import verdicts


def _run(seconds: float, whole: float, peak: float) -> dict[str, Any]:
    return {"seconds": seconds, "process_seconds": whole, "peak_mb": peak}


def test_a_missed_ratio_and_a_higher_peak_are_named_and_fail() -> None:
    # Given a 5M run where the two-CSV engine took 1.5x DuckDB's whole-process time and kept its peak,
    # and the snapshot-keeping variant went above the peak measured before the speed work
    runs = {
        "engine_csv": [_run(4.0, 6.0, 1200), _run(4.0, 6.0, 1210)],
        "duckdb_tuned": [_run(3.5, 4.0, 1400), _run(3.5, 4.0, 1400)],
        "engine_csv_snapshot": [_run(5.0, 7.0, 1300), _run(5.0, 7.0, 1340)],
    }
    # When judged
    lines = dict(verdicts(5_000_000, runs))
    # Then the ratio is missed, engine_csv's peak kept, engine_csv_snapshot's peak higher (its maximum)
    assert lines == {
        "5,000,000 rows: engine_csv ÷ duckdb_tuned = 1.50 whole process (target <= 1.30: MISSED); "
        "1.14 in-process": False,
        "5,000,000 rows: engine_csv peak 1210 MiB (before: 1333 MiB: not higher)": True,
        "5,000,000 rows: engine_csv_snapshot peak 1340 MiB (before: 1333 MiB: HIGHER)": False,
    }


def test_only_the_targets_whose_contenders_ran_at_this_size_are_judged() -> None:
    # Given a 1M run of the production pair only, within its target
    runs = {
        "engine_parquet": [_run(1.0, 1.4, 700)],
        "duckdb_production": [_run(1.1, 1.5, 600)],
    }
    # When judged at 1M, and at a size with no targets
    at_1m = verdicts(1_000_000, runs)
    at_2m = verdicts(2_000_000, runs)
    # Then the production ratio and its peak, both met; nothing at 2M
    assert at_1m == [
        ("1,000,000 rows: engine_parquet ÷ duckdb_production = 0.93 whole process (target <= 1.00: met); "
         "0.91 in-process", True),
        ("1,000,000 rows: engine_parquet peak 700 MiB (before: 773 MiB: not higher)", True),
    ]  # fmt: skip
    assert at_2m == []


def test_the_ratio_comes_from_the_adjacent_pairs_and_the_peak_from_every_run() -> None:
    # Given 5M repetitions where a slow spell hit the engine's runs (1.0x DuckDB), adjacent pairs where it
    # took 0.75x DuckDB, and one of those pairs where the engine peaked higher than in the repetitions
    runs = {
        "engine_parquet": [_run(5.0, 6.0, 1100), _run(5.0, 6.0, 1100)],
        "duckdb_production": [_run(5.5, 6.0, 1050), _run(5.5, 6.0, 1050)],
    }
    adjacent = {
        "engine_parquet": [_run(4.0, 4.5, 1100), _run(4.1, 4.5, 1200), _run(4.0, 4.4, 1100)],
        "duckdb_production": [_run(5.5, 6.0, 1050), _run(5.5, 6.0, 1050), _run(5.4, 5.8, 1050)],
    }
    # When judged
    lines = verdicts(5_000_000, runs, adjacent)
    # Then each ratio is the median of the pairs' (whole: 0.75, 0.75, 0.76; in-process: 0.73, 0.75, 0.74)
    # and the peak the highest of every run
    assert lines == [
        ("5,000,000 rows: engine_parquet ÷ duckdb_production = 0.75 whole process (target <= 0.80: met); "
         "0.74 in-process", True),
        ("5,000,000 rows: engine_parquet peak 1200 MiB (before: 1335 MiB: not higher)", True),
    ]  # fmt: skip
