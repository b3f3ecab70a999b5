"""What a CSV file does that pandas, DuckDB and Spark all read without options, and the engine reads
the same way: a UTF-8 byte-order mark, CRLF or CR line ends, empty lines, no line break after the
last record. Found from the file's first and last bytes, for the run record's ``input_notes``
(nothing is refused for them)."""

from __future__ import annotations

from pathlib import Path

_PROBE = 1 << 20
UTF8_BOM = b"\xef\xbb\xbf"


def csv_quirks(path: Path) -> list[str]:
    """Notes on ``path``'s quirks, in a fixed order; empty for a plain file (or a Parquet one)."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        head = handle.read(_PROBE)
        if head.startswith(b"PAR1"):
            return []
        handle.seek(max(size - _PROBE, 0))
        tail = handle.read(_PROBE)
    notes = []
    if head.startswith(UTF8_BOM):
        notes.append("UTF-8 byte-order mark skipped")
    if b"\r\n" in head:
        notes.append("CRLF line ends")
    elif b"\r" in head.rstrip(b"\r"):
        notes.append("CR line ends")
    body = head.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    end = tail.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    if b"\n\n" in body or end.endswith(b"\n\n"):
        notes.append("empty lines skipped")
    if size and not tail.endswith((b"\n", b"\r")):
        notes.append("no line break after the last record")
    return notes
