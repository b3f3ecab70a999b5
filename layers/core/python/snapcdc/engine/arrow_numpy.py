"""numpy arrays to Arrow and back, straight over the buffers.

pyarrow's own conversions of Python and numpy objects (``pa.array``, ``pa.scalar``, a Python value
given to a compute function, ``take`` with numpy indices, ``to_numpy`` that must copy,
``Schema.empty_table``) first ask whether the object is a pandas one, and that question imports
pandas: 0.3-0.4 s of every cold start on a machine where pandas is installed (the Lambda layer has
it). So does loading pyarrow's query engine (``Table.join``, ``sort_by``, ``group_by``) or its datasets
(``pq.read_table``). The engine and the CDC stage's feeds convert through these helpers instead, on
every path a run takes (``tests/integration/test_cdc_handler.py`` runs them in a fresh interpreter);
rare paths (a quarantine, a key hash collision, the operator commands) may still use pyarrow's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa


def arrow(values: np.ndarray) -> pa.Array:
    """A numpy array of bools or numbers as an Arrow array (no nulls); numbers without a copy."""
    values = np.ascontiguousarray(values)
    count = len(values)
    if values.dtype == np.bool_:
        bits = np.packbits(values, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), count, [None, pa.py_buffer(bits)])
    return pa.Array.from_buffers(pa.from_numpy_dtype(values.dtype), count, [None, pa.py_buffer(values)])


def positions(rows: np.ndarray) -> pa.Array:
    """Row positions for ``take`` (int64)."""
    return arrow(np.asarray(rows, dtype=np.int64))


def mask(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A boolean column as a numpy bool array, null as False."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    parts = [_chunk_mask(chunk) for chunk in chunks]
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=bool)


def _bits(buffer: pa.Buffer, offset: int, count: int) -> np.ndarray:
    data = np.frombuffer(buffer, dtype=np.uint8)
    first, skip = offset // 8, offset % 8
    return np.unpackbits(data[first : first + (skip + count + 7) // 8], bitorder="little")[skip : skip + count]


def _chunk_mask(chunk: pa.Array) -> np.ndarray:
    count = len(chunk)
    if count == 0:
        return np.zeros(0, dtype=bool)
    validity, values = chunk.buffers()[:2]
    found = _bits(values, chunk.offset, count).view(bool)
    if chunk.null_count:
        found &= _bits(validity, chunk.offset, count).view(bool)
    return found


def items(column: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """The values of a one-chunk column without nulls as a numpy array whose items have equal bytes
    exactly where the values are equal: integers, dates and timestamps as numbers, text whose values
    all have one length as one ``void`` item per value (both views of Arrow's buffers, no copy).
    None for anything else (nulls, several chunks, text of mixed lengths, floats: -0.0 == 0.0)."""
    if isinstance(column, pa.ChunkedArray):
        if column.num_chunks != 1:
            return None
        column = column.chunk(0)
    kind = column.type
    if column.null_count or len(column) == 0:
        return None
    if pa.types.is_integer(kind) or pa.types.is_date(kind) or pa.types.is_timestamp(kind):
        width = kind.bit_width // 8
        return np.frombuffer(
            column.buffers()[1], dtype=np.dtype(f"V{width}"), count=len(column), offset=column.offset * width
        )
    large = pa.types.is_large_string(kind) or pa.types.is_large_binary(kind)
    if not (large or pa.types.is_string(kind) or pa.types.is_binary(kind)):
        return None
    offsets = np.frombuffer(column.buffers()[1], dtype=np.int64 if large else np.int32)
    offsets = offsets[column.offset : column.offset + len(column) + 1]
    first, width = int(offsets[0]), int(offsets[1] - offsets[0])
    if width == 0 or int(offsets[-1]) - first != width * len(column) or not (np.diff(offsets) == width).all():
        return None
    data = column.buffers()[2]
    return np.frombuffer(data, dtype=np.dtype(f"V{width}"), count=len(column), offset=first)


def numbers(column: pa.Array | pa.ChunkedArray, fill: float | int = 0) -> np.ndarray:
    """A numeric column (int, uint, float) as a numpy array, nulls as ``fill``."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    dtype = np.dtype(_NUMPY_TYPES[str(column.type)])
    parts = []
    for chunk in chunks:
        values = np.frombuffer(chunk.buffers()[1], dtype=dtype, count=len(chunk), offset=chunk.offset * dtype.itemsize)
        if chunk.null_count:
            values = values.copy()
            values[~_bits(chunk.buffers()[0], chunk.offset, len(chunk)).view(bool)] = fill
        parts.append(values)
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


_NUMPY_TYPES = {
    "int8": "i1",
    "int16": "i2",
    "int32": "i4",
    "int64": "i8",
    "uint8": "u1",
    "uint16": "u2",
    "uint32": "u4",
    "uint64": "u8",
    "float": "f4",
    "double": "f8",
}


def scalar(value: bool | int | float | str | datetime, kind: pa.DataType) -> pa.Scalar:
    """``value`` as an Arrow scalar of type ``kind`` (bool, a number, string or timestamp type; a naive
    datetime is taken as UTC, as pyarrow takes it)."""
    if pa.types.is_string(kind):
        return texts([str(value)], kind)[0]
    if pa.types.is_boolean(kind):
        return arrow(np.array([bool(value)]))[0]
    if pa.types.is_timestamp(kind):
        assert isinstance(value, datetime)
        ticks = np.array([_ticks(value, kind.unit)], dtype=np.int64)
        return pa.Array.from_buffers(kind, 1, [None, pa.py_buffer(ticks)])[0]
    assert not isinstance(value, (str, datetime))
    return arrow(np.array([value], dtype=np.dtype(_NUMPY_TYPES[str(kind)])))[0]


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ticks(value: datetime, unit: str) -> int:
    """``value`` as a count of ``unit`` since the epoch (exact: whole microseconds, then scaled)."""
    micros = (value if value.tzinfo is not None else value.replace(tzinfo=UTC)) - _EPOCH
    count = micros // timedelta(microseconds=1)
    if unit == "ns":
        return count * 1000
    return count // {"s": 1_000_000, "ms": 1000, "us": 1}[unit]


def repeated(value: bool | int | float | str | datetime, kind: pa.DataType, count: int) -> pa.Array:
    """``value`` ``count`` times, as an Arrow array of type ``kind`` (see :func:`scalar`)."""
    return pa.repeat(scalar(value, kind), count)


def texts(values: Sequence[str], kind: pa.DataType | None = None) -> pa.Array:
    """A few Python strings as an Arrow string array (no nulls)."""
    encoded = [value.encode() for value in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum(np.array([len(item) for item in encoded], dtype=np.int32), out=offsets[1:])
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(kind or pa.string(), len(encoded), buffers)


def empty_table(schema: pa.Schema) -> pa.Table:
    """A table of ``schema`` with no rows."""
    return pa.Table.from_batches([], schema=schema)
