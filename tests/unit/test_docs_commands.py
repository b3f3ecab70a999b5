"""The docs show only what exists (issue 21, finding 12): every ``snapcdc`` command line in a code
block of the README and docs/ parses with the real parser, every ``cdk.json`` context key is in
docs/deploy.md's table and every key that table names is in ``cdk.json``, and every config key the
README lists is a field of the pipeline config. (tests/e2e/test_readme.py runs the quick tour.)"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from snapcdc.cli import build_parser
from snapcdc.config import PipelineConfig, TableConfig

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# Placeholders the docs use, and a value of their kind.
PLACEHOLDERS = [
    (re.compile(r"<SNAP>|\bSNAP\b"), "20260105T090000Z"),
    (re.compile(r"\$\{day\}"), "20250101"),  # the backfill loop's date
    (re.compile(r"<[^>]+>|\$[A-Za-z_]+"), "x"),
]


def _command_lines() -> list[tuple[str, str]]:
    found = []
    for page in PAGES:
        inside = False
        for line in page.read_text(encoding="utf-8").splitlines():
            if line.lstrip().startswith("```"):
                inside = not inside
                continue
            text = line.split("  #", 1)[0].split(" || ", 1)[0].strip()
            if inside and re.match(r"^(\.venv/bin/)?snapcdc\s", text):
                found.append((page.name, text))
    return found


def _as_argv(line: str) -> list[str]:
    """The command's arguments with every optional ``[...]`` part included, placeholders filled in."""
    for pattern, value in PLACEHOLDERS:
        line = pattern.sub(value, line)
    words = shlex.split(line.replace("[", " ").replace("]", " "))
    return words[1:]


def test_the_docs_show_commands():
    assert len(_command_lines()) >= 10


@pytest.mark.parametrize(("page", "line"), _command_lines(), ids=[f"{p}:{line[:60]}" for p, line in _command_lines()])
def test_every_command_line_the_docs_show_parses(page, line):
    argv = _as_argv(line)
    if argv == ["--version"]:
        return
    # When parsed by the console script's own parser: a flag it does not have would exit 2
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as stopped:
        pytest.fail(f"{page}: `{line}` does not parse (exit {stopped.code})")
    assert args.command == argv[0]


def _context_keys() -> set[str]:
    context = json.loads((REPO / "cdk.json").read_text())["context"]
    return {key for key in context if not key.startswith("@")}


def test_every_context_key_is_documented_in_deploy_md():
    table = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    rows = set(re.findall(r"^\| `([a-z_]+)`", table, re.M))
    rows |= {
        k
        for line in re.findall(r"^\| (`[a-z_]+`(?: / `[a-z_]+`)+) \|", table, re.M)
        for k in re.findall(r"`([a-z_]+)`", line)
    }
    assert _context_keys() - rows == set(), "context keys missing from docs/deploy.md"
    assert rows - _context_keys() == set(), "docs/deploy.md documents keys cdk.json does not have"


def test_every_config_key_the_readme_lists_is_a_field():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    paragraph = readme[readme.index("## Configuration") :].split("\n\n")[1]
    named = set(re.findall(r"`([a-z_]+)`", paragraph)) - {"pipeline"}
    assert named, paragraph
    fields = set(TableConfig.model_fields) | set(PipelineConfig.model_fields)
    assert named <= fields, named - fields
