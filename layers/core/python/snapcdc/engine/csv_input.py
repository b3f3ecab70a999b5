"""Reading a snapshot CSV file: its header, every column as text (the exact path), or a stream of
batches converted to given types while parsed (the fast path), with clear errors for malformed files.

Pure (pyarrow and numpy). Read as text, every column is a nullable string (empty field -> null), so
that typing is decided once, by :mod:`snapcdc.engine.schema`, with the table's history in mind.
pyarrow parses the file with several threads; when it rejects the file, a slow pure-Python scan
finds the line and the problem so the message can name them.
"""

from __future__ import annotations

import csv
import itertools
import os
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from snapcdc.engine.fidelity import CHECKED_TYPES, cast_whole
from snapcdc.engine.spec import InputError
from snapcdc.errors import ControlSignal

UTF8_BOM = b"\xef\xbb\xbf"
# Big blocks parse faster; a record longer than a block makes pyarrow fail, and we retry once
# with a block as large as the file (capped by pyarrow's int32 block size).
DEFAULT_BLOCK_SIZE = 16 << 20
# Streaming: pyarrow's reader queues up to 32 blocks read ahead, so a block of 4 MB caps that at 128 MB.
STREAM_BLOCK_SIZE = 4 << 20
MAX_BLOCK_SIZE = (1 << 31) - 1
# A file is parsed in segments of about this size (one batch each), two at a time, a few ahead.
SEGMENT_BYTES = 16 << 20
_SEGMENTS_AHEAD = 3
_SEGMENTS_JOINED = 4  # a segment ending inside a quoted value is joined with up to 3 next ones
_LINE_PROBE_BYTES = 64 << 10
_HEADER_PROBE_BYTES = 1 << 20
_NUL_SCAN_BYTES = 16 << 20


def is_parquet(path: Path) -> bool:
    if path.suffix.lower() == ".parquet":
        return True
    with path.open("rb") as handle:
        return handle.read(4) == b"PAR1"


def _first_record(path: Path, name: str) -> tuple[str, int]:
    """The header line text (BOM stripped) and the byte length of the file."""
    size = path.stat().st_size
    with path.open("rb") as handle:
        probe = handle.read(_HEADER_PROBE_BYTES)
    if probe.startswith(UTF8_BOM):
        probe = probe[len(UTF8_BOM) :]
    if not probe.strip(b"\r\n\t "):
        raise InputError(name, 1, "empty file: no header line")
    ends = [at for at in (probe.find(b"\n"), probe.find(b"\r")) if at >= 0]  # LF, CRLF or CR line ends
    line = probe[: min(ends)] if ends else probe
    try:
        return line.decode("utf-8"), size
    except UnicodeDecodeError:
        raise InputError(name, 1, "header is not valid UTF-8") from None


def detect_delimiter(header_line: str) -> str:
    """',' or ';', whichever splits the header more (outside quotes); ',' on a tie."""
    counts = {",": 0, ";": 0}
    quoted = False
    for char in header_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    return ";" if counts[";"] > counts[","] else ","


def read_header(path: Path, name: str, delimiter: str | None) -> tuple[list[str], str]:
    """The validated column names and the delimiter of a CSV file."""
    header_line, _ = _first_record(path, name)
    if "\x00" in header_line:
        raise InputError(name, 1, "NUL byte in header")
    sep = delimiter or detect_delimiter(header_line)
    names = next(csv.reader([header_line], delimiter=sep), [])
    if not names:
        raise InputError(name, 1, "empty file: no header line")
    seen: set[str] = set()
    for position, column in enumerate(names, start=1):
        if not column.strip():
            raise InputError(name, 1, f"header column {position} has an empty name")
        if column in seen:
            raise InputError(name, 1, f"duplicate column name {column!r} in header")
        seen.add(column)
    return names, sep


def _find_nul(path: Path) -> int | None:
    """Physical line number of the first NUL byte, or None (pyarrow would accept NUL silently)."""
    offset = 0
    with path.open("rb") as handle:
        while chunk := handle.read(_NUL_SCAN_BYTES):
            at = chunk.find(b"\x00")
            if at >= 0:
                return _line_at(path, offset + at)
            offset += len(chunk)
    return None


def _line_at(path: Path, position: int) -> int:
    """Physical line number of a byte position (counted only when there is something to report)."""
    lines = 1
    with path.open("rb") as handle:
        while position > 0 and (chunk := handle.read(min(_NUL_SCAN_BYTES, position))):
            lines += chunk.count(b"\n")
            position -= len(chunk)
    return lines


def locate_problem(path: Path, name: str, delimiter: str, columns: int) -> InputError | None:
    """Slow exact scan (only after pyarrow refused the file): first bad line and what is wrong."""
    state = {"line": 0}

    def text_lines() -> Iterator[str]:
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                state["line"] = number
                if number == 1 and raw.startswith(UTF8_BOM):
                    raw = raw[len(UTF8_BOM) :]
                if b"\x00" in raw:
                    raise InputError(name, number, "NUL byte in data")
                try:
                    yield raw.decode("utf-8")
                except UnicodeDecodeError as error:
                    raise InputError(name, number, f"invalid UTF-8 (byte {error.start + 1} of the line)") from None

    reader = csv.reader(text_lines(), delimiter=delimiter, strict=True)
    try:
        next(reader, None)  # header, validated before
        while True:
            start = state["line"] + 1
            record = next(reader, None)
            if record is None:
                return None
            if record and len(record) != columns:
                return InputError(name, start, f"expected {columns} fields, found {len(record)}")
    except InputError as error:
        return error
    except csv.Error as error:
        return InputError(name, state["line"], f"malformed CSV: {error}")


def _read_options(block_size: int) -> pacsv.ReadOptions:
    return pacsv.ReadOptions(block_size=block_size, use_threads=True)


def _parse_options(delimiter: str) -> pacsv.ParseOptions:
    return pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True)


def _convert_options(types: Mapping[str, pa.DataType]) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(
        column_types=dict(types),
        strings_can_be_null=True,
        quoted_strings_can_be_null=True,
        null_values=[""],
        # The same spellings schema.parse accepts for bool: true/false in any case, 1/0.
        true_values=[*_case_variants("true"), "1"],
        false_values=[*_case_variants("false"), "0"],
    )


def _case_variants(word: str) -> list[str]:
    return ["".join(letters) for letters in itertools.product(*((c.lower(), c.upper()) for c in word))]


def _checked_header(path: Path, name: str, delimiter: str | None) -> tuple[list[str], str]:
    """The validated column names and delimiter, after making sure the file holds no NUL byte."""
    names, sep = read_header(path, name, delimiter)
    nul_line = _find_nul(path)
    if nul_line is not None:
        raise InputError(name, nul_line, "NUL byte in data")
    return names, sep


def _check_names(found: list[str], names: list[str], name: str) -> None:
    if found != names:
        raise InputError(name, 1, "header could not be parsed consistently (quoted line break in a name?)")


def read_csv_strings(path: Path, name: str, delimiter: str | None = None) -> pa.Table:
    """All columns as nullable strings (an empty field is null), in file order."""
    names, sep = _checked_header(path, name, delimiter)
    size = path.stat().st_size
    block_size = DEFAULT_BLOCK_SIZE
    while True:
        try:
            table = pacsv.read_csv(
                path,
                read_options=_read_options(block_size),
                parse_options=_parse_options(sep),
                convert_options=_convert_options(dict.fromkeys(names, pa.string())),
            )
            break
        except pa.ArrowInvalid as error:
            if "straddl" in str(error) and block_size < min(size + 1, MAX_BLOCK_SIZE):
                block_size = min(max(size + 1, block_size * 4), MAX_BLOCK_SIZE)
                continue
            located = locate_problem(path, name, sep, len(names))
            raise (located or InputError(name, None, str(error))) from None
    _check_names(table.column_names, names, name)
    return table


class TypedReadFailed(ControlSignal):
    """The fast typed read stopped (a value not of its expected type, or a malformed record):
    the caller falls back to reading strings, which widens, quarantines or names the bad line."""


def sample_strings(path: Path, name: str, names: list[str], sep: str) -> pa.Table:
    """The first block of the file (up to ~4 MB), all columns as strings: enough to infer types."""
    try:
        reader = pacsv.open_csv(
            path,
            read_options=_read_options(STREAM_BLOCK_SIZE),
            parse_options=_parse_options(sep),
            convert_options=_convert_options(dict.fromkeys(names, pa.string())),
        )
        batch = next(iter(reader), None)
    except pa.ArrowInvalid as error:
        raise TypedReadFailed(str(error)) from None
    _check_names(reader.schema.names, names, name)
    return pa.Table.from_batches([batch] if batch is not None else [], schema=reader.schema)


def typed_batches(
    path: Path, name: str, names: list[str], sep: str, types: Mapping[str, pa.DataType]
) -> Iterator[pa.RecordBatch]:
    """Stream a file whose header passed :func:`read_header` in batches converted to ``types``.
    Raises :class:`TypedReadFailed` (possibly after some batches) when a value does not convert, a
    record is malformed or a text value holds a NUL byte (the exact path then names its line)."""
    # Numbers are read as text and converted here: the CSV reader's own parse accepts text a number
    # does not give back (007, 0x10, ' 5'), and lossless typing must see it. They are read as bytes,
    # with no UTF-8 check: the conversion accepts ASCII only, and a value it refuses sends the file
    # to the exact path, which reads (and checks) every value as text.
    numbers = {column: types[column] for column in names if types[column] in CHECKED_TYPES}
    read_types = {column: pa.binary() if column in numbers else types[column] for column in names}
    convert = _TypedRead(_convert_options(read_types), numbers)
    try:
        for batch in _segment_batches(path, name, names, sep, convert):
            if _holds_nul(batch):
                raise TypedReadFailed("NUL byte in a text value")
            yield batch
    except pa.ArrowInvalid as error:
        raise TypedReadFailed(str(error)) from None


@dataclass(frozen=True)
class _TypedRead:
    """How a typed read converts: the reader's options, then the number columns from their text."""

    options: pacsv.ConvertOptions
    numbers: Mapping[str, pa.DataType]

    def numbers_of(self, table: pa.Table) -> pa.Table:
        """``table`` (as read, numbers as bytes) with its number columns converted."""
        for name, target in self.numbers.items():
            if name in table.column_names:
                index = table.column_names.index(name)
                chunks = [cast_whole(chunk.view(pa.string()), target) for chunk in table.column(index).chunks]
                table = table.set_column(index, name, pa.chunked_array(chunks, type=target))
        return table


def _segment_batches(
    path: Path, name: str, names: list[str], sep: str, convert: _TypedRead
) -> Iterator[pa.RecordBatch]:
    """The file's records, parsed a segment at a time by two threads (pyarrow's streaming reader uses
    one core). A segment starts after a line break, which is a record boundary unless it falls inside
    a quoted value; the segment before it then ends in that value (its last text value ends with the
    line break, or its last record falls short or fails to convert). A segment whose end is in doubt
    is parsed again joined with the next one; after a few joins the rest of the file is read by one
    streaming reader from the last sure boundary (which also reports a record that is really bad)."""
    starts = _segment_starts(path)
    count = len(starts) - 1
    with path.open("rb") as handle, ThreadPoolExecutor(max_workers=2, thread_name_prefix="csv-segment") as pool:

        def parse(first: int, end: int) -> pa.Table | pa.ArrowInvalid:
            """Segments first to end - 1, as one."""
            # From the line break before the segment: pyarrow skips a BOM at the start of what it reads,
            # and a BOM starting a line later in the file is data (an empty first line is ignored).
            at, stop = max(starts[first] - 1, 0), starts[end]
            if stop - at >= MAX_BLOCK_SIZE:  # one block per segment: a line of 2 GB is read by the stream
                return pa.ArrowInvalid("segment larger than a block")
            data = os.pread(handle.fileno(), stop - at, at)
            if len(data) != stop - at:
                return pa.ArrowInvalid("short read")
            header = None if first == 0 else names  # later segments have no header line
            options = pacsv.ReadOptions(use_threads=False, block_size=len(data) + 1, column_names=header)
            try:
                table = pacsv.read_csv(pa.BufferReader(data), options, _parse_options(sep), convert.options)
                return convert.numbers_of(table)
            except pa.ArrowInvalid as error:
                return error

        def whole(parsed: pa.Table | pa.ArrowInvalid, end: int) -> bool:
            return not isinstance(parsed, pa.ArrowInvalid) and (end == count or _ends_cleanly(parsed))

        ahead: dict[int, Future[pa.Table | pa.ArrowInvalid]] = {}
        try:
            first = 0
            while first < count:
                for later in range(first, min(first + _SEGMENTS_AHEAD, count)):
                    if later not in ahead:
                        ahead[later] = pool.submit(parse, later, later + 1)
                end = first + 1
                parsed = ahead.pop(first).result()
                while not whole(parsed, end) and end < count and end - first < _SEGMENTS_JOINED:
                    _cancel(ahead.pop(end, None))  # its start was not a record boundary
                    end += 1
                    parsed = parse(first, end)
                if not whole(parsed, end):
                    for pending in ahead.values():
                        _cancel(pending)
                    ahead.clear()
                    yield from _stream_from(path, name, starts[first], names, sep, convert)
                    return
                if first == 0:
                    _check_names(parsed.column_names, names, name)
                yield from parsed.to_batches()
                first = end
        finally:
            for pending in ahead.values():  # segments not needed any more
                _cancel(pending)


def _cancel(pending: Future[pa.Table | pa.ArrowInvalid] | None) -> None:
    if pending is not None:
        pending.cancel()


def _segment_starts(path: Path) -> list[int]:
    """Byte offsets where segments start (after the first line break past every SEGMENT_BYTES),
    then the file size."""
    size = path.stat().st_size
    starts = [0]
    with path.open("rb") as handle:
        for nominal in range(SEGMENT_BYTES, size, SEGMENT_BYTES):
            at = max(nominal, starts[-1])
            handle.seek(at)
            while chunk := handle.read(_LINE_PROBE_BYTES):
                found = chunk.find(b"\n")
                if found >= 0:
                    break
                at += len(chunk)
            if not chunk or at + found + 1 >= size:
                break
            if at + found + 1 > starts[-1]:
                starts.append(at + found + 1)
    return [*starts, size]


def _ends_cleanly(table: pa.Table) -> bool:
    """Whether no text value of the last record ends with a line break (as a value cut at the
    segment's end inside its quotes would). No record: only blank lines (or the header), no quotes."""
    if table.num_rows == 0:
        return True
    last = table.slice(table.num_rows - 1)
    for column in last.columns:
        if pa.types.is_string(column.type):
            value = column[0].as_py()
            if value is not None and value.endswith(("\n", "\r")):
                return False
    return True


def _stream_from(
    path: Path, name: str, offset: int, names: list[str], sep: str, convert: _TypedRead
) -> Iterator[pa.RecordBatch]:
    """Records from ``offset`` (a record boundary; 0: the header) to the end, by one streaming reader."""
    with pa.OSFile(str(path)) as handle:
        options = _read_options(STREAM_BLOCK_SIZE)
        if offset:
            handle.seek(offset - 1)  # from the line break before it, as a segment is parsed
            options.column_names = names
        reader = pacsv.open_csv(
            handle, read_options=options, parse_options=_parse_options(sep), convert_options=convert.options
        )
        _check_names(reader.schema.names, names, name)
        for batch in _read_ahead(reader):
            yield from convert.numbers_of(pa.Table.from_batches([batch])).to_batches()


def _holds_nul(batch: pa.RecordBatch) -> bool:
    """Whether a text value of ``batch`` holds a NUL byte, which pyarrow accepts silently. (A NUL in
    a number, date or bool field already fails its conversion.)"""
    for column in batch.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            data = column.buffers()[2]  # the reader's text for this column: every byte is from the file
            if data is not None and data.size and not np.frombuffer(data, dtype=np.uint8).all():
                return True
    return False


def _read_ahead(reader: pacsv.CSVStreamingReader) -> Iterator[pa.RecordBatch]:
    """The reader's batches, decoded by a background thread one batch ahead of the consumer.

    pyarrow's streaming reader decodes on the calling thread; the decode releases the GIL, so a
    thread of its own lets it run while the consumer hashes and matches the previous batch."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="csv-reader") as thread:
        ahead = thread.submit(reader.read_next_batch)
        while True:
            try:
                batch = ahead.result()
            except StopIteration:
                return
            ahead = thread.submit(reader.read_next_batch)
            yield batch


__all__ = [
    "TypedReadFailed",
    "detect_delimiter",
    "is_parquet",
    "read_csv_strings",
    "read_header",
    "sample_strings",
    "typed_batches",
]
