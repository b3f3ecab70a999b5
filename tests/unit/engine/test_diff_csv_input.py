"""Reading CSV snapshots: dialect details and malformed files (snapcdc.engine.csv_input)."""

from __future__ import annotations

from pathlib import Path

import pytest
from snapcdc.engine import InputError
from snapcdc.engine.csv_input import read_csv_strings


def _read(tmp_path: Path, data: bytes, delimiter: str | None = None) -> list[dict[str, str | None]]:
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    return read_csv_strings(path, "t.csv", delimiter).to_pylist()


def test_crlf_and_bom(tmp_path: Path) -> None:
    # Given a Windows export with a UTF-8 BOM and CRLF line ends
    rows = _read(tmp_path, b'\xef\xbb\xbfid;name\r\n1;"a\r\nb"\r\n2;\r\n')
    # Then the BOM is not part of the first name, CRLF inside quotes is data, empty is null
    assert rows == [{"id": "1", "name": "a\r\nb"}, {"id": "2", "name": None}]


def test_cr_line_ends(tmp_path: Path) -> None:
    # Given a file with classic Mac line ends (CR only) / Then its records are read
    assert _read(tmp_path, b"id,name\r1,a\r2,b\r") == [{"id": "1", "name": "a"}, {"id": "2", "name": "b"}]


def test_delimiter_detected_from_header(tmp_path: Path) -> None:
    assert _read(tmp_path, b'a;b\n"x,y";2\n') == [{"a": "x,y", "b": "2"}]
    assert _read(tmp_path, b'a,b\n"x;y",2\n') == [{"a": "x;y", "b": "2"}]


def test_header_only_file_is_an_empty_table(tmp_path: Path) -> None:
    assert _read(tmp_path, b"id,name\n") == []


@pytest.mark.parametrize(
    ("data", "line", "problem"),
    [
        (b"", 1, "empty file: no header line"),
        (b"\xef\xbb\xbf\n", 1, "empty file: no header line"),
        (b"id,id\n1,2\n", 1, "duplicate column name 'id' in header"),
        (b"id,,x\n1,2,3\n", 1, "header column 2 has an empty name"),
        (b"id,name\n1,a\n2,b,c\n", 3, "expected 2 fields, found 3"),
        (b'id,name\n1,"multi\nline"\n2\n', 4, "expected 2 fields, found 1"),
        (b"id,name\n1,a\n2,\xff\n", 3, "invalid UTF-8 (byte 3 of the line)"),
        (b"id,name\n1,a\x00b\n", 2, "NUL byte in data"),
    ],
)
def test_malformed_csv_names_file_line_and_problem(tmp_path: Path, data: bytes, line: int, problem: str) -> None:
    # Given a malformed file / When read
    with pytest.raises(InputError) as error:
        _read(tmp_path, data)
    # Then the error says which file, which line, what is wrong
    assert (error.value.file, error.value.line, error.value.problem) == ("t.csv", line, problem)
    assert str(error.value) == f"t.csv: line {line}: {problem}"


def test_huge_single_field_is_read(tmp_path: Path) -> None:
    # Given a field far larger than the parser's block (100 MB)
    big = b"x" * (100 * 1024 * 1024)
    rows = _read(tmp_path, b"id,blob\n1,small\n2," + big + b"\n")
    # Then it is read whole
    assert len(rows[1]["blob"] or "") == len(big)
