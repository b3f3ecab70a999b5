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
    lost: np.ndarray = _padded(offsets, data, np.diff(offsets), zero_alone=True) & _valid(typed)
    return lost


def float_losses(text: pa.Array, typed: pa.Array) -> np.ndarray:
    """Per row: the text parsed to ``typed`` (float64, by Arrow's cast) is not a decimal number the double
    equals, or it is padded (a leading ``+``, or zeros before the first digit of its integer part). The
    cast takes decimals and ``nan``/``inf`` spellings, which parse to non-finite doubles."""
    if len(text) == 0:
        return np.zeros(0, dtype=bool)
    offsets, data = _offsets_and_bytes(text)
    lengths = np.diff(offsets)
    values = arrow_numpy.numbers(typed)
    valid = _valid(typed)
    lost: np.ndarray = valid & (_padded(offsets, data, lengths, zero_alone=False) | ~np.isfinite(values))
    zero = valid & ~lost & (values == 0)
    if zero.any():  # 1e-400 parses to 0: a zero must be written as one
        rows = np.flatnonzero(zero)
        written_zero = arrow_numpy.mask(pc.match_substring_regex(text.take(arrow_numpy.positions(rows)), _ZERO_TEXT))
        lost[rows[~written_zero]] = True
    doubtful = valid & ~lost & (values != 0) & ((lengths > _SURE_FLOAT_CHARS) | (np.abs(values) < _SMALLEST_NORMAL))
    if doubtful.any():  # long texts: most are the double's shortest decimal, the rest are settled exactly
        rows = np.flatnonzero(doubtful)
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


def _padded(offsets: np.ndarray, data: np.ndarray, lengths: np.ndarray, *, zero_alone: bool) -> np.ndarray:
    """Per row: the text starts with ``+``, or its first digit is a 0 followed by a digit (``007``,
    ``-00.5``); with ``zero_alone`` (integers), a 0 followed by anything, or ``-0``."""
    padded = np.zeros(len(lengths), dtype=bool)
    if len(data) == 0:
        return padded
    starts = offsets[:-1] - offsets[0]
    first = data[np.minimum(starts, len(data) - 1)]  # an empty last value would point past the end
    suspect = (lengths > 0) & ((first == _ZERO) | (first == _MINUS) | (first == _PLUS))  # most start 1-9
    if not suspect.any():
        return padded
    rows = np.flatnonzero(suspect)
    first = first[rows]
    start, length = offsets[rows] - offsets[0], lengths[rows]
    sign = (first == _MINUS) & (length > 1)
    lead_at = start + sign
    after_at = np.minimum(lead_at + 1, len(data) - 1)
    has_after = length > sign + 1
    zero_first = data[lead_at] == _ZERO
    found = (first == _PLUS) | (zero_first & has_after & _is_digit(data[after_at]))
    if zero_alone:  # an integer: nothing may follow a leading 0 (0x1F), and there is no -0
        found |= zero_first & (has_after | sign)
    padded[rows] = found
    return padded


def _offsets_and_bytes(text: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The value offsets (int64) and the bytes they index (from the first value's start)."""
    if not (pa.types.is_string(text.type) or pa.types.is_large_string(text.type)):
        text = text.cast(pa.string())
    offset_type = np.int64 if pa.types.is_large_string(text.type) else np.int32
    _, offsets_buffer, data_buffer = text.buffers()
    width = np.dtype(offset_type).itemsize
    offsets = np.frombuffer(offsets_buffer, dtype=offset_type, count=len(text) + 1, offset=text.offset * width)
    offsets = offsets.astype(np.int64)
    if data_buffer is None:
        return offsets, np.zeros(0, dtype=np.uint8)
    return offsets, np.frombuffer(data_buffer, dtype=np.uint8)[offsets[0] : offsets[-1]]
