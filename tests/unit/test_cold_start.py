"""Every scheduled run of the CDC function is a cold start: importing its handler loads only what
each run needs (a library used by one helper, by another path only, or by tracing that is off, is not
imported)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# this tree's engine (Lambda puts the layer on sys.path), not whichever copy the editable install points at
LAYER = ROOT / "layers" / "core" / "python"
OUTSIDE_LAMBDA = {"PATH": "", "AWS_DEFAULT_REGION": "us-east-1", "PYTHONPATH": str(LAYER)}
IN_LAMBDA = {**OUTSIDE_LAMBDA, "AWS_LAMBDA_FUNCTION_NAME": "snapcdc-cdc", "LAMBDA_TASK_ROOT": "/var/task"}

IMPORT_HANDLER = """
import json, sys
sys.path.insert(0, sys.argv[1])
import handler
from pydantic import BaseModel
models = [
    f"{m.__name__}.{name}" for m in list(sys.modules.values()) if m.__name__.startswith("snapcdc.")
    for name, value in vars(m).items()
    if isinstance(value, type) and issubclass(value, BaseModel) and value.__module__ == m.__name__
    and value.__pydantic_complete__
]
print(json.dumps({"modules": sorted(sys.modules), "built": sorted(models)}))
"""

# A traced function called as Lambda would (tracing on, no daemon: X-Ray drops what it cannot send).
CALL_A_TRACED_FUNCTION = """
import json, sys
from aws_xray_sdk.core import patcher
from snapcdc.observability import traced

@traced(patch=tuple(sys.argv[1].split(",")))
def handler(event, context):
    return {"answer": event["question"] * 2}

result = handler({"question": 21}, None)
print(json.dumps({"result": result, "patched": sorted(patcher._PATCHED_MODULES)}))
"""


def _run(script: str, argument: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script, argument],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=env,
    )
    return done.stdout.strip().splitlines()[-1]


def _import_handler(folder: Path, env: dict[str, str]) -> dict[str, list[str]]:
    """The modules loaded by importing the handler of ``folder`` in a fresh interpreter (``modules``), and
    the snapcdc models whose validators that import built (``built``)."""
    imported: dict[str, list[str]] = json.loads(_run(IMPORT_HANDLER, str(folder), env))
    return imported


def _top_level_modules_after_importing(folder: Path, env: dict[str, str]) -> set[str]:
    return {name.split(".")[0] for name in _import_handler(folder, env)["modules"]}


def test_importing_the_cdc_handler_does_not_import_pandas_or_pyspark() -> None:
    # Given a fresh interpreter; when the CDC handler is imported (as Lambda does on a cold start)
    loaded = _top_level_modules_after_importing(ROOT / "lambdas" / "cdc", OUTSIDE_LAMBDA)
    # Then the engine came with it, and neither pandas nor pyspark did
    assert {"snapcdc", "pyarrow", "numpy"} <= loaded
    assert "pandas" not in loaded
    assert "pyspark" not in loaded


# Imported by the runs that need them only: Iceberg (tables that enable it), the change feeds (tables
# that enable one), the schema migration (a run whose schema changed), the Spark engine (the Glue job's),
# the operator's commands, the extract; difflib (the message of a file refused for a misnamed column);
# the X-Ray SDK (a traced call's).
ONLY_SOME_RUNS_NEED = ("pyiceberg", "awswrangler", "pandas", "pyspark", "aws_xray_sdk", "wrapt", "difflib")
ONLY_SOME_RUNS_NEED_OF_SNAPCDC = ("snapcdc.cdc.iceberg", "snapcdc.cdc.feeds", "snapcdc.cdc.migrate")
ONLY_SOME_RUNS_NEED_OF_SNAPCDC += ("snapcdc.spark", "snapcdc.ops", "snapcdc.extract", "snapcdc.cli")


@pytest.mark.parametrize("environment", [OUTSIDE_LAMBDA, IN_LAMBDA], ids=["outside-lambda", "in-lambda"])
def test_importing_the_cdc_handler_loads_only_what_every_run_needs(environment: dict[str, str]) -> None:
    # Given a fresh interpreter; when the CDC handler is imported (as Lambda does on a cold start)
    imported = _import_handler(ROOT / "lambdas" / "cdc", environment)
    loaded = set(imported["modules"])
    # Then the engine came with it
    assert {"snapcdc.cdc.stage", "snapcdc.engine", "pyarrow.parquet"} <= loaded
    # And no library nor engine module that only some runs need did
    assert {name.split(".")[0] for name in loaded}.isdisjoint(ONLY_SOME_RUNS_NEED)
    assert [m for m in loaded if m.startswith(ONLY_SOME_RUNS_NEED_OF_SNAPCDC)] == []
    # And the validators of the bucket's documents and of the settings are built on first use, not at import
    assert [m for m in imported["built"] if m.startswith(("snapcdc.lake.", "snapcdc.settings."))] == []


@pytest.mark.parametrize("environment", [OUTSIDE_LAMBDA, IN_LAMBDA], ids=["outside-lambda", "in-lambda"])
@pytest.mark.parametrize("function", ["cdc", "extract", "spark_state"])
def test_importing_a_handler_does_not_import_the_xray_sdk(function: str, environment: dict[str, str]) -> None:
    # Given a fresh interpreter, in Lambda's environment or not
    # When a function's handler is imported
    loaded = _top_level_modules_after_importing(ROOT / "lambdas" / function, environment)
    # Then Powertools came with it, but not the X-Ray SDK nor wrapt (built on the first traced call)
    assert {"snapcdc", "aws_lambda_powertools"} <= loaded
    assert "aws_xray_sdk" not in loaded
    assert "wrapt" not in loaded


@pytest.mark.parametrize("patch", ["botocore", "botocore,requests"])
def test_a_traced_call_in_lambda_patches_only_the_named_libraries(patch: str) -> None:
    # Given Lambda's environment with tracing on (X-Ray's context errors logged, as in Lambda)
    env = {**IN_LAMBDA, "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR"}
    # When a function decorated with traced(patch=...) is called
    called = json.loads(_run(CALL_A_TRACED_FUNCTION, patch, env))
    # Then it ran, and X-Ray patched exactly those libraries
    assert called["result"] == {"answer": 42}
    assert called["patched"] == sorted(patch.split(","))


def test_a_traced_call_outside_lambda_patches_nothing() -> None:
    # Given no Lambda environment; when a traced function is called
    called = json.loads(_run(CALL_A_TRACED_FUNCTION, "botocore", OUTSIDE_LAMBDA))
    # Then it ran, and nothing was patched
    assert called["result"] == {"answer": 42}
    assert called["patched"] == []


def test_the_engine_bench_quotes_the_last_cold_start(tmp_path: Path) -> None:
    from bench.cold_start_bench import Medians, save
    from bench.engine_bench import cold_start_lines, docs_text

    # Given a cold-start run's medians saved where the engine bench reads them
    saved = tmp_path / "cold-start.json"
    results = [Medians("its libraries alone", 9, 0.262, 0.262), Medians("handler, in Lambda", 9, 0.299, 0.3)]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("bench.cold_start_bench.RESULTS", saved)
        save(results, "within")
    # When docs/benchmark.md's text is made
    lines = cold_start_lines(saved)
    text = docs_text("x86_64", "2026-12-05", 3, [], [], lines)
    # Then it quotes each median and the verdict; without a run, nothing
    assert "- handler, in Lambda: wall 0.299 s, CPU 0.300 s (median of 9 fresh processes)" in text
    assert "- target 0.35 s CPU, handler in Lambda: within" in text
    assert cold_start_lines(tmp_path / "absent.json") == []
