"""Parsing a CSV a segment at a time, two at once (snapcdc.engine.csv_input.typed_batches): the records are
those one reader of the whole file gives, wherever a segment starts, inside quoted line breaks too."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snapcdc.engine import csv_input
from snapcdc.engine.csv_input import TypedReadFailed, read_csv_strings, read_header, typed_batches

from tests.unit.engine.diff_model import to_csv

EVERY_LINE = 1  # a segment starts after every line break of the file, quoted or not


def _segmented(
    path: Path, types: dict[str, pa.DataType] | None = None, delimiter: str | None = None
) -> list[dict[str, object]]:
    names, sep = read_header(path, "t.csv", delimiter)
    types = types or dict.fromkeys(names, pa.string())
    schema = pa.schema([(name, types[name]) for name in names])
    return pa.Table.from_batches(list(typed_batches(path, "t.csv", names, sep, types)), schema=schema).to_pylist()


def _file(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    return path


def _split_at_every_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes) -> Path:
    """``data`` as a file parsed in segments starting after every line break, quoted or not."""
    monkeypatch.setattr(csv_input, "SEGMENT_BYTES", EVERY_LINE)
    return _file(tmp_path, data)


TEXT = st.text(alphabet=st.sampled_from(list('ab,;"\n\r é\ufeff')), max_size=6)  # a BOM may start a line


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.integers(min_value=1, max_value=4).flatmap(
        lambda width: st.lists(st.lists(TEXT, min_size=width, max_size=width), max_size=12)
    ),
    st.sampled_from([",", ";"]),
    st.booleans(),
    st.booleans(),
    st.integers(min_value=1, max_value=64),
)
def test_segments_give_the_records_one_reader_gives(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    values: list[list[str]],
    delimiter: str,
    crlf: bool,
    bom: bool,
    segment_bytes: int,
) -> None:
    # Given any text (quotes, delimiters, line breaks inside values), written as RFC 4180
    width = len(values[0]) if values else 1
    columns = [f"c{i}" for i in range(width)]
    rows = [dict(zip(columns, row, strict=True)) for row in values]
    path = _file(Path(tempfile.mkdtemp(dir=tmp_path)), to_csv(rows, columns, delimiter, crlf, bom))  # type: ignore[arg-type]
    # When it is parsed in segments of a few bytes
    monkeypatch.setattr(csv_input, "SEGMENT_BYTES", segment_bytes)
    segmented = _segmented(path, delimiter=delimiter)
    # Then the records are those of one reader of the whole file
    assert segmented == read_csv_strings(path, "t.csv", delimiter).to_pylist()


def test_a_segment_starting_inside_a_quoted_line_break_of_the_last_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given values with line breaks in the last column, and a segment starting after every line break
    path = _split_at_every_line(tmp_path, monkeypatch, b'id,note\n1,"first\nsecond"\n2,"x\r\ny\n"\n3,plain\n')
    # When parsed / Then the quoted line breaks stay inside their values
    assert _segmented(path) == [
        {"id": "1", "note": "first\nsecond"},
        {"id": "2", "note": "x\r\ny\n"},
        {"id": "3", "note": "plain"},
    ]


def test_a_segment_starting_inside_a_quoted_line_break_before_a_typed_column(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a line break quoted in a middle column, followed by an int column
    path = _split_at_every_line(tmp_path, monkeypatch, b'id,note,qty\n1,"a\nb",5\n2,c,6\n')
    # When parsed with types / Then each record is whole and typed
    types = {"id": pa.string(), "note": pa.string(), "qty": pa.int64()}
    assert _segmented(path, types) == [{"id": "1", "note": "a\nb", "qty": 5}, {"id": "2", "note": "c", "qty": 6}]


@pytest.mark.parametrize(
    "data",
    [b"id,qty\n1,2\n2,x\n3,4\n", b"id,qty\n1,2\n2,3,4\n", b"id,qty\n1,2\n2,a\x00b\n"],
    ids=["value-not-of-its-type", "extra-field", "nul-byte"],
)
def test_a_bad_record_in_a_later_segment_stops_the_fast_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes
) -> None:
    # Given a file whose third record is bad, parsed a line per segment
    path = _split_at_every_line(tmp_path, monkeypatch, data)
    # When parsed with qty as int64 (the NUL is in a text column) / Then the fast read stops
    types = {"id": pa.string(), "qty": pa.int64() if b"\x00" not in data else pa.string()}
    with pytest.raises(TypedReadFailed):
        _segmented(path, types)


def test_segments_start_after_line_breaks_past_each_segment_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a 10-line file of 6-byte lines and segments of 16 bytes
    path = _file(tmp_path, b"".join(b"%05d\n" % i for i in range(10)))
    monkeypatch.setattr(csv_input, "SEGMENT_BYTES", 16)
    # When the starts are found / Then each is the first line start after 16, 32, 48, then the size
    assert csv_input._segment_starts(path) == [0, 18, 36, 54, 60]


@pytest.mark.parametrize(
    "data",
    [
        b"\xef\xbb\xbfid,note\n1,x\n\xef\xbb\xbf2,y\n",
        b'id,note\n\xef\xbb\xbf"1,a\n2",b\n',
        b'id,note\n\xef\xbb\xbf2,"x\n' + b"y\n" * 6 + b'z"\n',  # a value too long to join: read by one reader
    ],
    ids=["parts-joined-with-cat", "bom-before-a-quote", "bom-where-one-reader-takes-over"],
)
def test_a_bom_starting_a_later_line_is_data_as_for_one_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, data: bytes
) -> None:
    # Given a UTF-8 BOM at the start of a line after the first (CSV parts joined with cat)
    path = _split_at_every_line(tmp_path, monkeypatch, data)
    # When parsed in segments / Then it is part of the value, as one reader of the file reads it
    assert _segmented(path) == read_csv_strings(path, "t.csv").to_pylist()


def test_a_segment_ending_inside_a_quoted_value_is_joined_with_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given 40 records whose notes hold line breaks, and segments of about one record
    records = b"".join(b'%d,"line one\nline two",%d\n' % (i, i) for i in range(40))
    path = _file(tmp_path, b"id,note,qty\n" + records)
    monkeypatch.setattr(csv_input, "SEGMENT_BYTES", 20)

    def no_stream(*args: object) -> None:
        raise AssertionError("the rest of the file was sent to one reader")

    monkeypatch.setattr(csv_input, "_stream_from", no_stream)
    # When parsed / Then every record is whole, without falling back to one streaming reader
    rows = _segmented(path, {"id": pa.int64(), "note": pa.string(), "qty": pa.int64()})
    assert rows == [{"id": i, "note": "line one\nline two", "qty": i} for i in range(40)]


def test_a_segment_read_short_is_never_parsed_as_the_segment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a file parsed a line per segment, and a read of the third segment that stops two bytes short
    # (a file shrinking under the reader); a short segment would still parse, as "3,4" instead of "3,45"
    path = _split_at_every_line(tmp_path, monkeypatch, b"id,qty\n1,2\n2,3\n3,45\n4,5\n")
    pread, reads = csv_input.os.pread, []

    def two_bytes_short(fd: int, size: int, offset: int) -> bytes:
        reads.append(offset)
        return pread(fd, size - 2 if len(reads) == 3 else size, offset)

    monkeypatch.setattr(csv_input.os, "pread", two_bytes_short)
    # When parsed / Then the records are those of one reader of the whole file
    assert _segmented(path) == read_csv_strings(path, "t.csv", None).to_pylist()
    assert len(reads) >= 3
