"""The bucket's contract is written once: the S3 prefixes and the Spark claim's suffix appear as string
literals only in ``snapcdc/lake/layout.py``; the package and the stack import them from there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "layers" / "core" / "python" / "snapcdc"
LAYOUT = PACKAGE / "lake" / "layout.py"
SCANNED = [PACKAGE, ROOT / "stacks", ROOT / "lambdas", ROOT / "app.py"]

PREFIXES = ["raw", "cdc", "full-load", "snapshots", "quarantine", "changelog", "scd2", "dms", "_runs"]
# A prefix at the start of a key or of a word ("raw/", f"{prefix}raw/"), not a folder of another path ("lambdas/cdc/").
CONTRACT = re.compile(
    r"(?<![\w/.-])(?:" + "|".join(re.escape(p) for p in PREFIXES) + r")/|_manifests|_archives|\.glue\.json"
)


def _sources() -> list[Path]:
    files: list[Path] = []
    for place in SCANNED:
        files.extend([place] if place.is_file() else sorted(place.rglob("*.py")))
    return files


def _docstrings(tree: ast.AST) -> set[int]:
    """The ids of the constants that are docstrings (prose: it may name the keys it documents)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def contract_literals(path: Path) -> list[str]:
    """``file:line: literal`` for each string literal (f-string parts included) that names a prefix.

    Prose is left out: docstrings, and literals with whitespace (messages, help texts, descriptions,
    suppression reasons), which name the prefixes for people; a key or a key's part has no whitespace."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    prose = _docstrings(tree)
    return [
        f"{path.name}:{node.lineno}: {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose
        if CONTRACT.search(node.value) and not re.search(r"\s", node.value)
    ]


def test_the_scan_finds_a_prefix_literal(tmp_path: Path) -> None:
    # Given a module that spells a prefix and the claim suffix, in a docstring, a plain and an f-string
    module = tmp_path / "module.py"
    module.write_text(
        '"""Reads raw/ (prose is allowed)."""\n'
        'KEY = "raw/"\n'
        "def claim(table):\n"
        '    return f"_runs/{table}/x.glue.json"\n'
        'HANDLER = "lambdas/cdc/handler.py"\n'
        'HELP = "recompute cdc/ from raw/"\n'
    )
    # When it is scanned
    hits = [hit.split(": ", 1)[1] for hit in contract_literals(module)]
    # Then the key literals are found; the prose and a folder that ends in a prefix's name are not
    assert sorted(hits) == ["'/x.glue.json'", "'_runs/'", "'raw/'"]


def test_s3_prefixes_and_the_claim_suffix_are_literals_only_in_the_layout() -> None:
    # Given every module of the package, the handlers and the stack but the layout
    sources = [path for path in _sources() if path != LAYOUT]
    assert len(sources) > 50
    # When their string literals are scanned for the bucket's prefixes and the claim suffix
    found = [hit for path in sources for hit in contract_literals(path)]
    # Then none spells one: they import them from snapcdc.lake.layout
    assert found == []
    # And the layout itself does (the scan would see them)
    assert contract_literals(LAYOUT)
