"""``make demo``: the console shows progress and the summary; the Lambda logs go to the log file only."""

from __future__ import annotations

import json

from snapcdc_dev.demo import run_demo


def test_demo_prints_progress_and_summary_and_logs_to_the_file(tmp_path, capsys):
    # Given an empty output folder
    out = tmp_path / "demo-output"
    # When the demo runs three snapshots
    code = run_demo(out, snapshots=3)
    # Then it passes verify
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    # And the console holds no JSON log or metric line, only the header, one line per snapshot and the summary
    assert not [line for line in lines if line.lstrip().startswith("{")]
    assert lines[0].startswith("snapcdc demo: 3 snapshots")
    progress = [line for line in lines if line.startswith("  [")]
    assert [line.split("]")[0] for line in progress] == ["  [1/3", "  [2/3", "  [3/3"]
    assert sum(line.startswith("OK   ") for line in lines) == 4
    assert "Lambda logs in" in lines[-1]
    # And the Iceberg tables of clientes, in the pipeline's bucket, read as of the first and the last snapshot
    (travel,) = [line for line in lines if line.startswith("iceberg snapcdc_demo.clientes: 3 commits")]
    assert "(snapshot 20260105T090000Z) -> " in travel and "(snapshot 20260105T170000Z) -> " in travel
    assert list((out / "iceberg" / "clientes" / "metadata").glob("*.metadata.json"))
    assert list((out / "iceberg" / "clientes_changes" / "data").rglob("*.parquet"))
    # And every Lambda log and metric line is in the log file, as JSON
    logged = (out / "logs" / "lambda.jsonl").read_text().splitlines()
    documents = [json.loads(line) for line in logged if line.startswith("{")]
    assert any(d.get("message") == "cdc done" for d in documents)
    assert any(d.get("message") == "extract finished" for d in documents)
    assert any("_aws" in d for d in documents)
