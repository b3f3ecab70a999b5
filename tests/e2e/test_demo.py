"""``make demo``: the console shows progress and the summary; the Lambda logs go to the log file only."""

from __future__ import annotations

import json

from snapcdc.cli import main
from snapcdc_dev.demo import BUCKET, run_demo
from snapcdc_dev.demo_folder import MARKER

from tests.support import only_printed_environment


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


def test_demo_through_the_cli_prints_no_log_line_on_either_stream(tmp_path, capsys):
    # Given / When the console script runs the demo
    code = main(["demo", "--out", str(tmp_path / "out"), "--snapshots", "3"])
    # Then no JSON log line on stdout or stderr
    captured = capsys.readouterr()
    assert code == 0
    assert not [line for line in captured.err.splitlines() if line.lstrip().startswith("{")], captured.err[:500]
    assert not [line for line in captured.out.splitlines() if line.lstrip().startswith("{")]
    assert (tmp_path / "out" / MARKER).is_file()


def test_demo_serve_keeps_the_bucket_up_for_verify_replay_ingest(tmp_path, capsys, monkeypatch):
    # Given the demo with --serve, and a user who runs the printed commands while it serves
    seen: dict[str, object] = {}

    def use_it() -> None:
        printed = capsys.readouterr().out
        exports = [line.removeprefix("export ") for line in printed.splitlines() if line.startswith("export ")]
        seen["exports"] = exports
        with only_printed_environment(exports):
            seen["verify"] = main(["verify", "--bucket", BUCKET])
            seen["replay"] = main(["replay", "--bucket", BUCKET, "--table", "produtos"])
            export = tmp_path / "produtos.csv"
            raw = sorted((tmp_path / "out" / "raw" / "produtos").glob("snapshot=*/produtos.csv"))
            export.write_bytes(raw[-1].read_bytes())
            seen["ingest"] = main(
                ["ingest", "--bucket", BUCKET, "--table", "produtos", "--snapshot", "20270101T000000Z", str(export)]
            )
            seen["verify_after"] = main(["verify", "--bucket", BUCKET])

    # When
    code = run_demo(tmp_path / "out", snapshots=3, serve=True, wait=use_it)
    # Then exactly two lines of environment, and every command worked against the served bucket
    assert code == 0
    assert len(seen["exports"]) == 2 and seen["exports"][0].startswith("AWS_ENDPOINT_URL=http://127.0.0.1:")
    assert (seen["verify"], seen["replay"], seen["ingest"], seen["verify_after"]) == (0, 0, 0, 0)
