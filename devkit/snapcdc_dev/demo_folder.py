"""The demo's output folder: it writes only into a folder it may call its own, and on a rerun
removes only the files it wrote there.

A folder is the demo's when it is new, empty, or holds the marker file :data:`MARKER` that an earlier
demo left (the marker lists the files that demo wrote). Any other folder is refused before anything
is written, and so are, whatever they hold, the home folder, the working directory and its parents,
and the checkout and its parents.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from snapcdc.errors import SnapcdcError

MARKER = ".snapcdc-demo"
_OWNER = "snapcdc demo"


class DemoFolderError(SnapcdcError):
    """``--out`` names a folder the demo must not write into; ``fix`` says what to do."""

    def __init__(self, message: str, fix: str) -> None:
        self.fix = fix
        super().__init__(message)


def _protected(folder: Path, cwd: Path, home: Path, checkout: Path) -> str | None:
    """Why ``folder`` (resolved) may never be the demo's, or None."""
    if folder == home:
        return "is your home folder"
    if folder == cwd:
        return "is the working directory"
    if cwd.is_relative_to(folder):
        return "is a parent of the working directory"
    if folder == checkout:
        return "is the snapcdc checkout"
    if checkout.is_relative_to(folder):
        return "is a parent of the snapcdc checkout"
    return None


@dataclass
class DemoFolder:
    """A folder the demo may write into; :meth:`file` records each file it writes."""

    path: Path
    written: list[str] = field(default_factory=list)

    @classmethod
    def claim(cls, out: Path, *, cwd: Path, home: Path, checkout: Path) -> DemoFolder:
        """Take ``out`` for this run: create it, or clear the files an earlier demo wrote there."""
        folder = out.expanduser().resolve()
        why = _protected(folder, cwd.resolve(), home.resolve(), checkout.resolve())
        if why is not None:
            raise DemoFolderError(f"--out {out} {why}: the demo never writes there", "choose a new folder")
        if folder.exists() and not folder.is_dir():
            raise DemoFolderError(f"--out {out} is a file", "choose a new folder")
        marker = folder / MARKER
        if folder.is_dir() and any(folder.iterdir()) and not marker.is_file():
            raise DemoFolderError(
                f"--out {out} is not empty and was not made by the demo (no {MARKER} in it); nothing was changed",
                "choose a new or empty folder",
            )
        if marker.is_file():
            cls._clear(folder, marker, out)
        folder.mkdir(parents=True, exist_ok=True)
        claimed = cls(folder)
        claimed.seal()  # the marker first: a run stopped half-way leaves a folder the next run may clear
        return claimed

    @staticmethod
    def _clear(folder: Path, marker: Path, out: Path) -> None:
        try:
            recorded = json.loads(marker.read_text(encoding="utf-8"))
            files = [str(f) for f in recorded["files"]] if recorded.get("owner") == _OWNER else None
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            files = None
        if files is None:
            raise DemoFolderError(f"--out {out}: {marker} is not a demo marker", "choose a new or empty folder")
        emptied: set[Path] = set()
        for relative in files:
            target = (folder / relative).resolve()
            if target.is_relative_to(folder) and target.is_file() and not target.is_symlink():
                target.unlink()
                emptied.update(p for p in target.parents if p.is_relative_to(folder) and p != folder)
        for parent in sorted(emptied, key=lambda p: -len(p.parts)):  # deepest first
            if parent.is_dir() and not any(parent.iterdir()):
                parent.rmdir()  # a folder the demo's files left empty; one holding a user's file stays

    def file(self, relative: str) -> Path:
        """Where to write ``relative`` (its folder made); recorded as written by the demo."""
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        self.written.append(relative)
        return target

    def seal(self) -> None:
        """Write the marker listing every file written so far."""
        record = {"owner": _OWNER, "files": sorted(set(self.written))}
        (self.path / MARKER).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
