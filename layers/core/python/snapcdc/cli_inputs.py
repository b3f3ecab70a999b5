"""What the ``snapcdc`` console script takes from its user, checked where it enters: option values
(delimiters, times, snapshot ids, ratios, encodings), input files, and the Kaggle credentials of
``snapcdc run`` (the environment, else the kaggle client's own ``kaggle.json``)."""

from __future__ import annotations

import argparse
import codecs
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from snapcdc.cli_failure import EXIT_USAGE, CliError
from snapcdc.lake.snapshot import Snapshot, SnapshotIdError

_NAMED_DELIMITERS = {"\\t": "\t", "tab": "\t", "\\x09": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


def delimiter(text: str) -> str:
    """One character; ``\\t`` as a shell passes it (two characters), ``tab``, ``comma``, ... too."""
    value = _NAMED_DELIMITERS.get(text.lower(), text)
    if len(value) != 1 or value in ('"', "\n", "\r"):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not one character (use e.g. ';', ',', '|', or '\\t' / tab for a tab)"
        )
    return value


def observed_at(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r} (e.g. 2026-01-05T09:00:00Z)") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def ratio(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1")
    return value


def snapshot(text: str) -> Snapshot:
    """A snapshot id, ``YYYYMMDDTHHMMSSZ`` (a real UTC time)."""
    try:
        return Snapshot.parse(text)
    except SnapshotIdError as error:
        raise argparse.ArgumentTypeError(f"{error} (e.g. 20260105T090000Z)") from None


def demo_runs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if not 3 <= value <= 24:
        raise argparse.ArgumentTypeError(f"{value} is out of range: the demo simulates 3 to 24 runs")
    return value


def encoding(text: str) -> str:
    try:
        return codecs.lookup(text).name
    except LookupError:
        raise argparse.ArgumentTypeError(f"unknown encoding {text!r} (e.g. utf-8, latin-1, cp1252)") from None


def snapshot_range(first: Snapshot | None, last: Snapshot | None) -> None:
    if first is not None and last is not None and first > last:
        raise CliError(f"--from {first} is after --to {last}", EXIT_USAGE, "swap them")


def input_file(path: Path, option: str) -> Path:
    """``path`` if it is a readable file; else a :class:`CliError` saying what is there instead."""
    if not path.exists():
        raise CliError(f"{option} {path}: no such file", EXIT_USAGE, "check the path")
    if not path.is_file():
        raise CliError(f"{option} {path}: is a folder, not a file", EXIT_USAGE, "name the snapshot file itself")
    if not os.access(path, os.R_OK):
        raise CliError(f"{option} {path}: not readable", EXIT_USAGE, "check its permissions")
    return path


def utf8_copy(path: Path, source_encoding: str, work: Path) -> Path:
    """``path`` re-encoded as UTF-8 in ``work`` (``path`` itself when it already is UTF-8)."""
    if codecs.lookup(source_encoding).name == "utf-8":
        return path
    target = work / (path.stem + ".utf8" + path.suffix)
    decoder = codecs.getincrementaldecoder(source_encoding)()
    with path.open("rb") as reader, target.open("w", encoding="utf-8", newline="") as out:
        for number, raw in enumerate(reader, start=1):
            try:
                out.write(decoder.decode(raw))
            except UnicodeDecodeError as error:
                raise CliError(
                    f"{path}: line {number}: not valid {source_encoding} (byte {error.start + 1} of the line)",
                    EXIT_USAGE,
                    "check --encoding",
                ) from None
        out.write(decoder.decode(b"", final=True))
    return target


def kaggle_credentials(environ: Mapping[str, str], home: Path) -> tuple[str, str, str]:
    """(username, key, where they came from): ``KAGGLE_USERNAME``/``KAGGLE_KEY``, else the kaggle
    client's file ``kaggle.json`` in ``KAGGLE_CONFIG_DIR``, ``~/.kaggle`` or ``~/.config/kaggle``
    (docs/kaggle.md). A :class:`CliError` naming the places looked at when there are none."""
    if environ.get("KAGGLE_USERNAME") and environ.get("KAGGLE_KEY"):
        return environ["KAGGLE_USERNAME"], environ["KAGGLE_KEY"], "KAGGLE_USERNAME/KAGGLE_KEY"
    if environ.get("KAGGLE_CONFIG_DIR"):
        folders = [Path(environ["KAGGLE_CONFIG_DIR"])]
    else:
        xdg = Path(environ["XDG_CONFIG_HOME"]) if environ.get("XDG_CONFIG_HOME") else home / ".config"
        folders = [home / ".kaggle", xdg / "kaggle"]
    for folder in folders:
        file = folder / "kaggle.json"
        if not file.is_file():
            continue
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
            username, key = str(data["username"]), str(data["key"])
        except (OSError, ValueError, KeyError, TypeError):
            raise CliError(
                f"{file}: not a kaggle.json with username and key", EXIT_USAGE, "download a new token from Kaggle"
            ) from None
        return username, key, str(file)
    looked = ", ".join(str(folder / "kaggle.json") for folder in folders)
    raise CliError(
        f"no Kaggle credentials: KAGGLE_USERNAME/KAGGLE_KEY unset and no {looked}",
        EXIT_USAGE,
        "set them, or put the kaggle.json from your Kaggle account settings there",
    )
