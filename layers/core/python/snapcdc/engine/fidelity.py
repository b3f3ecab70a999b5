"""Which parsed numbers kept every digit of their text: typing is lossless or it does not happen.

Arrow's parsers (``pc.cast`` and the CSV reader) accept text that a number does not give back:
``007``, ``-0``, ``0x10`` and `` 5`` all become integers whose text is different, and
``9007199254740993`` becomes the double of ``9007199254740992``. A column is typed only when each
value survives (docs/design.md, "CDC semantics"):

- int64: the value written back is the text, character for character (no leading zeros, sign,
  spacing or hex the type would drop);
- float64: the text is a finite decimal number without a leading ``+`` or leading zeros (``00501``
  is a code, not a number), and the stored double is that number: its shortest round-trip decimal
  has the same value (``0.1``, ``2.50`` and ``1e5`` survive; ``9007199254740993``, ``1e-400``, ``NaN``
  and ``inf`` do not).

Both checks run over the Arrow buffers (the first bytes of each value), not per value in Python; they
rely on what Arrow's cast accepts (the property tests in tests/unit/engine/test_fidelity.py pin it).
A float text of more than 15 characters that differs from the double's shortest decimal, and a
subnormal, are settled exactly with ``Decimal``; they are rare.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from snapcdc.engine import arrow_numpy

CHECKED_TYPES = (pa.int64(), pa.float64())
_ZERO, _NINE, _MINUS, _PLUS = ord("0"), ord("9"), ord("-"), ord("+")
# A decimal of at most 15 significant digits is recovered exactly from the nearest double; a text of
# at most 15 characters has at most 15 digits.
_SURE_FLOAT_CHARS = 15
_SMALLEST_NORMAL = 2.2250738585072014e-308
_ZERO_TEXT = r"^-?[0.]*([eE].*)?$"  # a text whose number is zero (all its mantissa digits are 0)


def cast_whole(text: pa.Array, target: pa.DataType) -> pa.Array:
    """``text`` as ``target`` (int64 or float64); ``pa.ArrowInvalid`` naming the first value that does not
    convert or would not be kept whole (the caller's exact path then finds every such row)."""
    typed = text.cast(target)
    lost = (int_losses if target == pa.int64() else float_losses)(text, typed)
    if lost.any():
        first = text[int(np.argmax(lost))].as_py()
        raise pa.ArrowInvalid(f"{target} would not keep the value {first!r} whole")
    return typed


def int_losses(text: pa.Array, typed: pa.Array) -> np.ndarray:
    """Per row: the text parsed to ``typed`` (int64, by Arrow's cast) is not its value's text. The cast
    takes digits after an optional ``-``, or hex after ``0x``: what it takes is the value's text unless
    it starts with a 0 that is not alone (``007``, ``0x10``, ``-0``)."""
    if len(text) == 0:
        return np.zeros(0, dtype=bool)
    offsets, data = _offsets_and_bytes(text)
    lost = _padded(offsets, data, zero_alone=True)
    if lost.any():
        lost &= _valid(typed)
    return lost


def float_losses(text: pa.Array, typed: pa.Array) -> np.ndarray:
    """Per row: the text parsed to ``typed`` (float64, by Arrow's cast) is not a decimal number the double
    equals, or it is padded (a leading ``+``, or zeros before the first digit of its integer part). The
    cast takes decimals and ``nan``/``inf`` spellings, which parse to non-finite doubles."""
    if len(text) == 0:
        return np.zeros(0, dtype=bool)
    offsets, data = _offsets_and_bytes(text)
    values = arrow_numpy.numbers(typed)
    valid = _valid(typed)
    lost: np.ndarray = _padded(offsets, data, zero_alone=False)
    lost |= ~np.isfinite(values)
    lost &= valid
    # Left to settle: zeros (1e-400 parses to 0), subnormals and long texts; a NaN is neither tiny nor kept.
    doubtful = (np.abs(values) < _SMALLEST_NORMAL) | (np.diff(offsets) > _SURE_FLOAT_CHARS)
    doubtful &= valid
    doubtful &= ~lost
    if not doubtful.any():
        return lost
    rows = np.flatnonzero(doubtful)
    zero = values[rows] == 0
    if zero.any():  # a zero must be written as one
        zeros = rows[zero]
        written_zero = arrow_numpy.mask(pc.match_substring_regex(text.take(arrow_numpy.positions(zeros)), _ZERO_TEXT))
        lost[zeros[~written_zero]] = True
    rows = rows[~zero]
    if len(rows):  # long texts: most are the double's shortest decimal, the rest are settled exactly
        shortest = pc.cast(typed.take(arrow_numpy.positions(rows)), pa.string())
        same = arrow_numpy.mask(pc.equal(shortest, text.take(arrow_numpy.positions(rows))))
        for row in rows[~same]:
            lost[row] = not _same_number(text[int(row)].as_py(), float(values[row]))
    return lost


def _same_number(written: str, stored: float) -> bool:
    try:
        return Decimal(written) == Decimal(repr(stored))
    except InvalidOperation:
        return False


def _valid(values: pa.Array) -> np.ndarray:
    if values.null_count == 0:
        return np.ones(len(values), dtype=bool)
    return arrow_numpy.mask(values.is_valid())


def _is_digit(data: np.ndarray) -> np.ndarray:
    result: np.ndarray = (data - np.uint8(_ZERO)) <= np.uint8(_NINE - _ZERO)  # wraps below '0'
    return result


def _padded(offsets: np.ndarray, data: np.ndarray, *, zero_alone: bool) -> np.ndarray:
    """Per row: the text starts with ``+``, or its first digit is a 0 followed by a digit (``007``,
    ``-00.5``); with ``zero_alone`` (integers), a 0 followed by anything, or ``-0``."""
    first = _first_bytes(offsets, data)
    # Most numbers start with 1-9. '+' (43), '-' (45) and '0' (48) are in 43..48: those rows are looked at.
    first -= np.uint8(_PLUS)
    suspect = first <= np.uint8(_ZERO - _PLUS)
    if not suspect.any():
        return suspect
    rows = np.flatnonzero(suspect)
    start = offsets[rows].astype(np.int64)
    length = offsets[rows + 1] - start
    rows, start, length = rows[length > 0], start[length > 0], length[length > 0]
    first = data[start]
    sign = (first == _MINUS) & (length > 1)
    lead_at = start + sign
    after_at = np.minimum(lead_at + 1, len(data) - 1)
    has_after = length > sign + 1
    zero_first = data[lead_at] == _ZERO
    found = (first == _PLUS) | (zero_first & has_after & _is_digit(data[after_at]))
    if zero_alone:  # an integer: nothing may follow a leading 0 (0x1F), and there is no -0
        found |= zero_first & (has_after | sign)
    padded = np.zeros(len(suspect), dtype=bool)
    padded[rows] = found
    return padded


def _first_bytes(offsets: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Each value's first byte (a copy; an empty value's is the next value's, or 0 past the end)."""
    starts = offsets[:-1]
    if len(starts) == 0 or starts[-1] < len(data):
        every: np.ndarray = data[starts]
        return every
    inside = int(np.searchsorted(starts, len(data)))  # empty values at the very end start past the data
    first = np.zeros(len(starts), dtype=np.uint8)
    first[:inside] = data[starts[:inside]]
    return first


def _offsets_and_bytes(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The value offsets (as stored: int32, or int64 for large text) and the bytes they index."""
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        text = text.cast(pa.string())
    offset_type = np.int64 if pa.types.is_large_string(text.type) else np.int32
    _, offsets_buffer, data_buffer = text.buffers()
    width = np.dtype(offset_type).itemsize
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type, count=len(text) + 1, offset=text.offset * width)
    if data_buffer is None:
        return offsets, np.zeros(0, dtype=np.uint8)
    return offsets, np.frombuffer(data_buffer, dtype=np.uint8)
