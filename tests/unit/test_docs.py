"""The repository stands on its own: its docs and code cite only files inside it, and those exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {
    ".git",
    ".venv",
    ".venv-checkov",
    "node_modules",
    "cdk.out",
    "demo-output",
    "build",
    "__pycache__",
    ".mypy_cache",
}
TEXT_SUFFIXES = {".py", ".md", ".json", ".toml", ".txt", ".cfg", ".yml", ".yaml"}
# A path outside the checkout (this machine's work folders, a sibling folder) or a design file the
# repository does not hold.
OUTSIDE = re.compile(r"(/work/|\.\./shared|\bshared/(DESIGN|KAGGLE)|(?<![\w/])(DESIGN|KAGGLE)\.md)")
DOC_CITATION = re.compile(r"\bdocs/[\w-]+\.md\b")
MARKDOWN_LINK = re.compile(r"\]\(([^)#:\s]+\.md)(#[^)]*)?\)")


def _text_files() -> list[Path]:
    files = []
    for path in REPO.rglob("*"):
        parts = path.relative_to(REPO).parts
        if any(part in SKIPPED_DIRS or part.endswith(".egg-info") or part.startswith(".bench") for part in parts):
            continue
        if path.is_file() and (path.suffix in TEXT_SUFFIXES or path.name in {"Makefile", "run"}):
            files.append(path)
    return files


def test_there_are_files_to_check():
    assert len(_text_files()) > 50
    assert (REPO / "docs" / "design.md").is_file()


@pytest.mark.parametrize("path", _text_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_file_cites_a_path_outside_the_repository(path: Path):
    # Given a text file of the checkout
    if path == Path(__file__):
        return  # this test names the patterns it looks for
    text = path.read_text(encoding="utf-8", errors="replace")
    # Then it names no path outside the checkout
    found = [m.group(0) for m in OUTSIDE.finditer(text)]
    assert not found, f"{path.relative_to(REPO)} cites {found}"
    # And every docs/*.md it names exists
    missing = sorted({c for c in DOC_CITATION.findall(text) if not (REPO / c).is_file()})
    assert not missing, f"{path.relative_to(REPO)} cites missing {missing}"


@pytest.mark.parametrize("path", sorted(REPO.glob("*.md")) + sorted((REPO / "docs").glob("*.md")), ids=str)
def test_relative_markdown_links_resolve(path: Path):
    # Given a page of the docs
    links = [m.group(1) for m in MARKDOWN_LINK.finditer(path.read_text(encoding="utf-8"))]
    # Then each relative link to a page lands on a file
    broken = [link for link in links if not (path.parent / link).resolve().is_file()]
    assert not broken, f"{path.name}: {broken}"
