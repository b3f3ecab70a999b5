"""The repository stands on its own: its docs and code cite only files inside it, and those exist."""

from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SKIPPED_DIRS = {
    ".git",
    ".venv",
    ".venv-checkov",
    ".venv-glue5",  # the Glue 5 environment tests/spark/test_glue_environment.py builds
    "node_modules",
    "cdk.out",
    "demo-output",
    "build",
    "__pycache__",
    ".mypy_cache",
}
TEXT_SUFFIXES = {".py", ".md", ".json", ".toml", ".txt", ".cfg", ".yml", ".yaml"}
# A Markdown page named in a text: a bare name (design.md), a path from the root (docs/design.md), a
# path relative to the citing file, or an absolute one (a web address is not a page of the checkout).
PAGE = re.compile(r"(?<![\w./:-])([\w./-]*[\w-]\.md)\b")
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


@functools.cache  # one walk of the checkout per test process, not one per file checked
def _pages_in_repo() -> set[str]:
    return {p.name for p in _text_files() if p.suffix == ".md"}


def _resolves_inside(cited: str, citing: Path, names: set[str]) -> bool:
    """Whether a cited page is a file of the checkout: a bare name is one of its pages; a path is found
    from the root or from the citing file, and stays inside the checkout."""
    if "/" not in cited:
        return cited in names
    if cited.startswith("/"):
        return False  # an absolute path is this machine's, not the user's
    for base in (REPO, citing.parent):
        target = (base / cited).resolve()
        if target.is_relative_to(REPO) and target.is_file():
            return True
    return False


def test_there_are_files_to_check():
    assert len(_text_files()) > 50
    assert (REPO / "docs" / "design.md").is_file()


@pytest.mark.parametrize("path", _text_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_file_cites_a_path_outside_the_repository(path: Path):
    # Given a text file of the checkout, and the pages it names
    cited = set(PAGE.findall(path.read_text(encoding="utf-8", errors="replace")))
    # Then each is a page of the checkout (a design file kept elsewhere, a sibling folder or this
    # machine's paths are not: users will not have them)
    names = _pages_in_repo()
    outside = sorted(c for c in cited if not _resolves_inside(c, path, names))
    assert not outside, f"{path.relative_to(REPO)} cites {outside}, not in the repository"


@pytest.mark.parametrize("path", sorted(REPO.glob("*.md")) + sorted((REPO / "docs").glob("*.md")), ids=str)
def test_relative_markdown_links_resolve(path: Path):
    # Given a page of the docs
    links = [m.group(1) for m in MARKDOWN_LINK.finditer(path.read_text(encoding="utf-8"))]
    # Then each relative link to a page lands on a file
    broken = [link for link in links if not (path.parent / link).resolve().is_file()]
    assert not broken, f"{path.name}: {broken}"
