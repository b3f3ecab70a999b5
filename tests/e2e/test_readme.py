"""The README's quick tour, run as written (issue 21, findings 11 and 12): its DuckDB queries return
rows on the demo's copy, and its commands work against ``snapcdc demo --serve`` with only the two
lines of environment the demo prints."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import duckdb
from snapcdc.cli import main
from snapcdc_dev.demo import run_demo

from tests.support import only_printed_environment

README = Path(__file__).resolve().parents[2] / "README.md"


def _tour() -> str:
    text = README.read_text(encoding="utf-8")
    return text[text.index("## Quick tour") : text.index("## S3 layout")]


def _blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", _tour(), re.S)


def _statements(sql: str) -> list[str]:
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def test_the_quick_tour_runs_as_written(tmp_path, monkeypatch, capsys):
    statements = [s for block in _blocks("sql") for s in _statements(block)]
    commands = [line.split("  #")[0] for block in _blocks("bash") for line in block.splitlines() if line.strip()]
    assert len(statements) >= 3 and len(commands) >= 4
    monkeypatch.chdir(tmp_path)
    results: dict[str, object] = {}

    def tour() -> None:
        # the queries, on the copy (demo-output/, as `make demo` writes it)
        for statement in statements:
            results[statement] = (
                duckdb.sql(statement).arrow().read_all().num_rows
            )  # (fetchall needs pytz for time zones)
        # the commands, in another shell: only the two printed lines of environment
        printed = capsys.readouterr().out
        exports = [line.removeprefix("export ") for line in printed.splitlines() if line.startswith("export ")]
        with only_printed_environment(exports):
            Path("demo-serve").symlink_to("demo-output")  # the tour's --out of the serving demo
            for command in commands[1:]:
                results[command] = main(shlex.split(command)[1:])

    # When the serving demo of the tour runs (its first command), writing the copy the queries read
    first = shlex.split(commands[0])
    assert first[1:] == ["demo", "--out", "demo-serve", "--serve"]
    assert run_demo(Path("demo-output"), snapshots=4, serve=True, wait=tour) == 0
    # Then every query returned rows and every command exited 0
    empty = [s for s in statements if results[s] == 0]
    assert not empty, empty
    failed = {c: results[c] for c in commands[1:] if results[c] != 0}
    assert not failed, failed
