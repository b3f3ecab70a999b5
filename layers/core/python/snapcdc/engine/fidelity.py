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

Both checks are vectorized over the Arrow buffers (the byte length and the bytes of each value); the
rare float text of more than 15 characters, a zero or a subnormal is settled exactly with ``Decimal``.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import numpy as np
import pyarrow as pa

_INT_BYTES = np.zeros(256, dtype=bool)
_INT_BYTES[list(b"0123456789-")] = True
_FLOAT_BYTES = np.zeros(256, dtype=bool)
_FLOAT_BYTES[list(b"0123456789-+.eE")] = True
# A canonical integer of d characters (sign excluded) lies in [_LOW[d], _HIGH[d]); d = 0 and d > 19
# never fit int64's text (_LOW > _HIGH there).
_MAX = 2**64 - 1
_LOW = np.array([_MAX, 0] + [10 ** (d - 1) for d in range(2, 20)] + [_MAX], dtype=np.uint64)
_HIGH = np.array([0] + [10**d for d in range(1, 19)] + [_MAX, 0], dtype=np.uint64)
# A decimal of at most 15 significant digits is recovered exactly from the nearest double; a text of
# at most 15 characters has at most 15 digits.
_SURE_FLOAT_CHARS = 15
_SMALLEST_NORMAL = 2.2250738585072014e-308


CHECKED_TYPES = (pa.int64(), pa.float64())


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
    """Per row: the text parsed to ``typed`` (int64, null where the text was null) is not its value's text."""
    lengths, foreign = _lengths_and_foreign_bytes(text, _INT_BYTES)
    values = typed.fill_null(0).to_numpy()
    magnitude = np.abs(values).view(np.uint64)  # |min int64| wraps to itself, 2**63 as uint64: right
    digits = np.clip(lengths - (values < 0), 0, len(_LOW) - 1)
    canonical = (magnitude >= _LOW[digits]) & (magnitude < _HIGH[digits])
    lost: np.ndarray = (foreign | ~canonical) & _valid(typed)
    return lost


def float_losses(text: pa.Array, typed: pa.Array) -> np.ndarray:
    """Per row: the text parsed to ``typed`` (float64) is not a decimal number the double equals."""
    lengths, foreign = _lengths_and_foreign_bytes(text, _FLOAT_BYTES)
    values = typed.fill_null(0.0).to_numpy()
    valid = _valid(typed)
    with np.errstate(invalid="ignore"):
        lost = valid & (foreign | ~np.isfinite(values) | _padded(text, lengths))
        doubtful = valid & ~lost & ((lengths > _SURE_FLOAT_CHARS) | (np.abs(values) < _SMALLEST_NORMAL))
    for row in np.flatnonzero(doubtful):
        lost[row] = not _same_number(text[int(row)].as_py(), float(values[row]))
    return lost


def _padded(text: pa.Array, lengths: np.ndarray) -> np.ndarray:
    """Per row: the text starts with ``+``, or its integer part with a zero that is not alone (``007.5``)."""
    offsets, data = _offsets_and_bytes(text)
    if len(data) == 0:
        return np.zeros(len(text), dtype=bool)
    padded = np.append(data, np.zeros(2, dtype=np.uint8))  # reads past the last value's end see NUL
    start = offsets[:-1] - offsets[0]
    first = padded[start]
    sign = (first == ord("-")) & (lengths > 1)
    lead, after = padded[start + sign], padded[start + sign + 1]
    digit_after = (after >= ord("0")) & (after <= ord("9")) & (lengths > sign + 1)
    result: np.ndarray = (lengths > 0) & ((first == ord("+")) | ((lead == ord("0")) & digit_after))
    return result


def _same_number(written: str, stored: float) -> bool:
    try:
        return Decimal(written) == Decimal(repr(stored))
    except InvalidOperation:
        return False


def _valid(values: pa.Array) -> np.ndarray:
    if values.null_count == 0:
        return np.ones(len(values), dtype=bool)
    return np.asarray(values.is_valid().to_numpy(zero_copy_only=False), dtype=bool)


def _lengths_and_foreign_bytes(text: pa.Array, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the value's length in bytes, and whether one of its bytes is not ``allowed``."""
    offsets, data = _offsets_and_bytes(text)
    lengths = np.diff(offsets)
    outside = ~allowed[data]
    if not outside.any():
        return lengths, np.zeros(len(text), dtype=bool)
    before = np.concatenate(([0], np.cumsum(outside, dtype=np.int64)))
    relative = offsets - offsets[0]
    return lengths, (before[relative[1:]] - before[relative[:-1]]) > 0


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
