"""The bucket commands against S3 (moto in-process): `snapcdc ingest` (exit codes, the JSON line,
catch-up order), `verify` on widened and on legacy mixed-type tables, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from snapcdc.cli import main
from snapcdc.lake.ledger import read_run_record

from tests.support import BUCKET, csv_bytes, put_raw

S1, S2, S3, S4 = "20260105T090000Z", "20260105T130000Z", "20260105T170000Z", "20260105T210000Z"
COLUMNS = ["id", "n", "nome"]
V1 = [["a", 10, "Ana"], ["b", 20, "Bia"], ["c", 30, "Caio"]]
V2 = [["a", 11, "Ana"], ["b", 20, "Bia"], ["c", 30, "Caio"], ["d", 40, "Davi"]]
V3 = [["a", 11, "Ana"], ["b", "12a", "Bia"], ["c", 30, "Caio"], ["d", 40, "Davi"]]
V4 = [["a", 11, "Ana"], ["b", "12a", "Bia"], ["d", 41, "Davi"], ["e", 50, "Eva"]]
CONFIG = {
    "dataset": "o/d",
    "tables": [{"name": "pontos", "file": "pontos.csv", "delimiter": ";", "primary_key": ["id"]}],
}


@pytest.fixture
def config(tmp_path) -> Path:
    path = tmp_path / "pipeline.json"
    path.write_text(json.dumps(CONFIG))
    return path


def _bucket_args(config: Path) -> list[str]:
    return ["--bucket", BUCKET, "--prefix", "lake", "--config", str(config)]


def _ingest(config, tmp_path, snap, rows, *extra):
    export = tmp_path / f"export-{snap}.csv"
    export.write_bytes(csv_bytes(COLUMNS, rows))
    return main(["ingest", *_bucket_args(config), *extra, "--table", "pontos", "--snapshot", snap, str(export)])


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_ingest_accepts_a_file_and_prints_the_run_record_as_the_last_line(store, config, tmp_path, capsys):
    # Given / When
    code = _ingest(config, tmp_path, S1, V1)
    # Then
    assert code == 0
    line = _last_json(capsys)
    assert {k: line[k] for k in ("table", "snapshot", "status", "inserts", "rows_new")} == {
        "table": "pontos", "snapshot": S1, "status": "accepted", "inserts": 3, "rows_new": 3,
    }  # fmt: skip
    assert store.exists(f"lake/raw/pontos/snapshot={S1}/pontos.csv")
    assert read_run_record(store, "pontos", S1).accepted


def test_ingest_processes_earlier_unprocessed_snapshots_first(store, config, tmp_path, capsys):
    # Given an earlier raw snapshot the CDC function never processed
    put_raw(store, _table(), S1, csv_bytes(COLUMNS, V1))
    # When S2 is ingested
    code = _ingest(config, tmp_path, S2, V2)
    # Then S1 first, then S2 diffed against it; one JSON line each, S2's last
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.strip().splitlines()]
    assert [(line["snapshot"], line["status"]) for line in lines] == [(S1, "accepted"), (S2, "accepted")]
    assert read_run_record(store, "pontos", S2).base_snapshot == S1
    assert lines[-1]["inserts"] == 1 and lines[-1]["updates"] == 1


def test_ingest_refused_by_the_delete_guard_exits_3(store, config, tmp_path, capsys):
    # Given
    assert _ingest(config, tmp_path, S1, V1) == 0
    capsys.readouterr()
    # When two of three rows disappear
    code = _ingest(config, tmp_path, S2, V1[:1])
    # Then
    assert code == 3
    line = _last_json(capsys)
    assert line["status"] == "refused" and line["refused_reason"] == "delete_guard"


def test_ingest_of_a_malformed_csv_exits_2_naming_the_file_and_line(store, config, tmp_path, capsys):
    # Given a short row on line 3
    export = tmp_path / "historical.csv"
    export.write_text("id;n;nome\na;1;Ana\nb;2\n")
    # When
    code = main(["ingest", *_bucket_args(config), "--table", "pontos", "--snapshot", S1, str(export)])
    # Then
    assert code == 2
    captured = capsys.readouterr()
    assert f"{export}: line 3" in captured.err
    line = json.loads(captured.out.strip().splitlines()[-1])
    assert line["status"] == "refused" and line["refused_reason"] == "malformed_input"


def test_ingest_of_a_snapshot_older_than_the_table_is_refused_as_bad_input(store, config, tmp_path, capsys):
    # Given
    assert _ingest(config, tmp_path, S2, V2) == 0
    # When an older export comes after it
    code = _ingest(config, tmp_path, S1, V1)
    # Then nothing is written for it
    assert code == 2
    assert "already has the later snapshot" in capsys.readouterr().err
    assert not store.exists(f"lake/raw/pontos/snapshot={S1}/pontos.csv")


def test_ingest_of_drifting_snapshots_then_verify_passes(store, config, tmp_path, capsys):
    # Given / When four exports, an int column getting 12a in the third
    codes = [_ingest(config, tmp_path, snap, rows) for snap, rows in ((S1, V1), (S2, V2), (S3, V3), (S4, V4))]
    capsys.readouterr()
    # Then
    assert codes == [0, 0, 0, 0]
    assert main(["verify", *_bucket_args(config)]) == 0
    assert capsys.readouterr().out.startswith("OK   pontos")


def test_verify_on_a_legacy_bucket_with_mixed_types_fails_with_a_message_not_a_traceback(
    store, config, tmp_path, capsys
):
    # Given a bucket as the pipeline left it before the migration: early files with n as int64
    for snap, rows in ((S1, V1), (S2, V2)):
        _ingest(config, tmp_path, snap, rows)
    legacy = {key: store.get_bytes(key) for key in store.list_keys("lake/") if key.endswith(".parquet")}
    for snap, rows in ((S3, V3), (S4, V4)):
        _ingest(config, tmp_path, snap, rows)
    for key, body in legacy.items():
        store.put_bytes(key, body)
    capsys.readouterr()
    # When
    code = main(["verify", *_bucket_args(config)])
    # Then one FAIL line naming a file and the types, and how to repair it
    assert code == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL pontos: 4 file(s) do not have the table's schema")
    assert "n is int64, the table's is string" in out
    # And the repair it names works
    assert main(["replay", *_bucket_args(config), "--table", "pontos", "--from", S4]) == 0
    assert main(["verify", *_bucket_args(config)]) == 0


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["verify", "--bucket", "no-such-bucket"], "snapcdc verify: NoSuchBucket:"),
        (["replay", "--bucket", BUCKET, "--table", "nope"], "snapcdc replay: CliError: table 'nope' is not"),
        (["verify", "--bucket", BUCKET, "--config", "/no/such.json"], "snapcdc verify: ConfigError:"),
    ],
)
def test_bucket_commands_report_expected_failures_in_one_line(store, capsys, argv, expected):
    # Given / When
    code = main(argv)
    # Then
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1, err


def _table():
    from snapcdc.config import TableConfig

    return TableConfig(**CONFIG["tables"][0])
