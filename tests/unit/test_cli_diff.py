"""The `snapcdc diff` command: exit codes, files written, the JSON summary line."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from snapcdc.cli import main

OLD = "id;name;updated\n1;ana;2025-01-01 10:00:00\n2;bia;2025-01-01 10:00:00\n3;caio;2025-01-01 10:00:00\n"


def _files(tmp_path: Path, new: str) -> tuple[Path, Path]:
    (tmp_path / "old.csv").write_text(OLD)
    (tmp_path / "new.csv").write_text(new)
    return tmp_path / "old.csv", tmp_path / "new.csv"


def test_diff_writes_changes_and_prints_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given an update, an insert and a duplicated key
    old, new = _files(tmp_path, OLD.replace("2;bia;", "2;bea;") + "4;davi;2025-02-01\n3;c2;2025-01-01\n")
    out = tmp_path / "out" / "changes.parquet"
    # When diffed
    code = main(["diff", "--old", str(old), "--new", str(new), "--pk", "id", "--date-field", "updated",
                 "--observed-at", "2026-01-01T00:00:00Z", "--out", str(out)])  # fmt: skip
    # Then exit 0, the change set and quarantine beside it, and a JSON summary as the last line
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {k: summary[k] for k in ("inserts", "updates", "deletes", "quarantined", "rows_old", "rows_new")} == {
        "inserts": 1, "updates": 1, "deletes": 0, "quarantined": 2, "rows_old": 3, "rows_new": 5,
    }  # fmt: skip
    assert summary["updates_without_date_bump"] == 1
    assert "seconds" in summary
    assert sorted(pq.read_table(out)["_cdc_operation"].to_pylist()) == ["I", "U"]
    assert pq.read_table(tmp_path / "out" / "changes.quarantine.parquet").num_rows == 2


def test_diff_refused_delete_exits_3_and_writes_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a snapshot deleting 2 of 3 rows
    old, new = _files(tmp_path, "id;name;updated\n1;ana;2025-01-01 10:00:00\n")
    out = tmp_path / "changes.parquet"
    # When diffed with the default ratio
    code = main(["diff", "--old", str(old), "--new", str(new), "--pk", "id", "--out", str(out)])
    # Then exit 3, the refusal on stderr, no OUT
    assert code == 3
    assert "2 deletes of 3 rows" in capsys.readouterr().err
    assert not out.exists()


def test_diff_max_delete_ratio_option_allows_more(tmp_path: Path) -> None:
    old, new = _files(tmp_path, "id;name;updated\n1;ana;2025-01-01 10:00:00\n")
    out = tmp_path / "changes.parquet"
    code = main(["diff", "--old", str(old), "--new", str(new), "--pk", "id", "--max-delete-ratio", "0.9",
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    assert pq.read_table(out).num_rows == 2


def test_diff_bad_input_exits_2_naming_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a new file with a short row
    old, new = _files(tmp_path, "id;name;updated\n1;ana\n")
    out = tmp_path / "changes.parquet"
    # When diffed
    code = main(["diff", "--old", str(old), "--new", str(new), "--pk", "id", "--out", str(out)])
    # Then exit 2 with file and line, no OUT
    assert code == 2
    assert f"{new}: line 2: expected 3 fields, found 2" in capsys.readouterr().err
    assert not out.exists()


def test_diff_composite_key_and_explicit_delimiter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "old.csv").write_text("a|b|v\n1|x|1\n1|y|2\n")
    (tmp_path / "new.csv").write_text("a|b|v\n1|x|1\n1|y|3\n")
    out = tmp_path / "c.parquet"
    code = main(["diff", "--old", str(tmp_path / "old.csv"), "--new", str(tmp_path / "new.csv"), "--pk", "a,b",
                 "--delimiter", "|", "--out", str(out)])  # fmt: skip
    assert code == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["updates"] == 1


@pytest.mark.parametrize("with_old", [True, False], ids=["later-snapshot", "first-load"])
def test_diff_keeps_the_snapshot_only_when_asked_and_the_change_set_is_the_same(tmp_path: Path, with_old: bool) -> None:
    # Given an update and an insert (or, without --old, a first load)
    old, new = _files(tmp_path, OLD.replace("2;bia;", "2;bea;") + "4;davi;2025-02-01 00:00:00\n")
    old_args = ["--old", str(old)] if with_old else []
    common = ["diff", *old_args, "--new", str(new), "--pk", "id", "--observed-at", "2026-01-01T00:00:00Z"]
    # When diffed once without --snapshot-out and once with it, each into its own folder
    plain, kept = tmp_path / "plain", tmp_path / "kept"
    assert main([*common, "--out", str(plain / "changes.parquet")]) == 0
    assert main([*common, "--out", str(kept / "changes.parquet"), "--snapshot-out", str(kept / "snap.parquet")]) == 0
    # Then the same change set; the snapshot only where asked, every accepted row in it; nothing else left
    assert pq.read_table(plain / "changes.parquet").equals(pq.read_table(kept / "changes.parquet"))
    assert sorted(p.name for p in plain.iterdir()) == ["changes.parquet"]
    assert sorted(p.name for p in kept.iterdir()) == ["changes.parquet", "snap.parquet"]
    assert sorted(pq.read_table(kept / "snap.parquet")["id"].to_pylist()) == ["1", "2", "3", "4"]
