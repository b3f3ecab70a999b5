"""Test helpers for the CDC engine: a naive Python model of the semantics, and change replay."""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from snapcdc.engine import CDC_OPERATION, CDC_TIMESTAMP, DiffResult, data_only
from snapcdc.engine.csv_input import read_csv_strings

Row = dict[str, Any]


def csv_table(data: bytes) -> pa.Table:
    """CSV bytes read as the engine reads a file (every column as text)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "input.csv"
        path.write_bytes(data)
        return read_csv_strings(path, "<memory>")


Key = tuple[Any, ...]


def key_of(row: Row, pk: Sequence[str]) -> Key:
    return tuple(row[k] for k in pk)


def rows_by_key(table: pa.Table, pk: Sequence[str]) -> dict[Key, Row]:
    rows = table.to_pylist()
    by_key = {key_of(r, pk): r for r in rows}
    assert len(by_key) == len(rows), "keys of an accepted snapshot are unique"
    return by_key


def replay(old: dict[Key, Row], changes: pa.Table, pk: Sequence[str]) -> dict[Key, Row]:
    """Apply a change set: upsert I and U by key, remove D. Checks each event makes sense."""
    state = dict(old)
    for row in changes.to_pylist():
        operation = row.pop(CDC_OPERATION)
        row.pop(CDC_TIMESTAMP)
        key = key_of(row, pk)
        if operation == "I":
            assert key not in state, f"insert of an existing key {key}"
            state[key] = row
        elif operation == "U":
            assert key in state, f"update of a missing key {key}"
            assert state[key] != row, f"update without a change for {key}"
            state[key] = row
        else:
            assert operation == "D", operation
            assert state.pop(key) == row, f"delete of {key} must carry the old values"
    return state


def accepted_model(old: dict[Key, Row], new_rows: list[Row], pk: Sequence[str]) -> tuple[dict[Key, Row], int]:
    """What the new accepted snapshot must be, and how many rows are quarantined."""
    keyed = [r for r in new_rows if all(r[k] not in (None, "") for k in pk)]
    counts = Counter(key_of(r, pk) for r in keyed)
    state = {key_of(r, pk): r for r in keyed if counts[key_of(r, pk)] == 1}
    for key, seen in counts.items():
        if seen > 1 and key in old:
            state[key] = old[key]  # a disputed key keeps its old row
    quarantined = len(new_rows) - len(keyed) + sum(n for n in counts.values() if n > 1)
    return state, quarantined


def assert_diff_matches_model(old: dict[Key, Row], new_rows: list[Row], result: DiffResult, pk: Sequence[str]) -> None:
    expected, quarantined = accepted_model(old, new_rows, pk)
    snapshot = rows_by_key(data_only(result.snapshot), pk)
    assert snapshot == expected
    assert replay(old, result.changes, pk) == snapshot
    stats = result.stats
    assert stats.quarantined == quarantined
    assert stats.inserts == sum(1 for k in expected if k not in old)
    assert stats.deletes == sum(1 for k in old if k not in expected)
    assert stats.updates == sum(1 for k in expected if k in old and expected[k] != old[k])
    assert stats.rows_snapshot == len(expected)


def _field(value: Any, delimiter: str) -> str:
    text = "" if value is None else str(value)
    if any(c in text for c in (delimiter, '"', "\r", "\n")):
        return '"' + text.replace('"', '""') + '"'
    return text


def to_csv(
    rows: list[Row], columns: Sequence[str], delimiter: str = ",", crlf: bool = False, bom: bool = False
) -> bytes:
    """RFC 4180 text: fields quoted when they hold the delimiter, a quote or a line break."""
    newline = "\r\n" if crlf else "\n"
    lines = [delimiter.join(_field(c, delimiter) for c in columns)]
    lines += [delimiter.join(_field(row[c], delimiter) for c in columns) for row in rows]
    data = (newline.join(lines) + newline).encode("utf-8")
    return (b"\xef\xbb\xbf" if bom else b"") + data


def text_table(rows: list[Row], columns: Sequence[str]) -> pa.Table:
    return pa.table({c: pa.array([r[c] for r in rows], type=pa.string()) for c in columns})
