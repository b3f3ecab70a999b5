"""Row hashes, vectorized with numpy straight over the Arrow buffers.

Pure (pyarrow/numpy). A row has two independent 64-bit hashes (lanes A and B), each a
MurmurHash64A-style chain over one 8-byte word per column, finalized once per row: a fixed-width
value (number, date, timestamp, bool) is its own word; a text value's word is one of its two
well-mixed lanes, so values are never concatenated and ("a", "bc") cannot meet ("ab", "c"). A null
is a constant word of its own in each lane (different in the two lanes: no value is both). Text
lanes take the caller's thread pool, two columns at a time; this module holds none.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from snapcdc.engine import arrow_numpy

_U64 = np.uint64
_SEED_A, _SEED_B = _U64(0x243F6A8885A308D3), _U64(0x13198A2E03707344)
_NULL_A, _NULL_B = _U64(0xA4093822299F31D0), _U64(0x082EFA98EC4E6C89)
_M_A, _M_B = _U64(0xC6A4A7935BD1E995), _U64(0x9E3779B97F4A7C15)
_SHIFT_A, _SHIFT_B = 47, 31  # each lane's chain: multiplier and shift
_Lanes = TypeVar("_Lanes")  # what hashing one column gives: one lane, or two
_PIECE = 64  # long strings are hashed as independent 64-byte pieces, so the work stays vectorized
# Text whose first _DISTINCT_PROBE values hold at most one distinct value in _REPEATS_AT_LEAST is
# hashed per distinct value.
_DISTINCT_PROBE, _REPEATS_AT_LEAST = 2048, 8
_WORD_MASKS = np.array([(1 << (8 * i)) - 1 for i in range(8)] + [(1 << 64) - 1], dtype=_U64)


def _fmix_a(h: np.ndarray) -> np.ndarray:  # MurmurHash3 finalizer (a bijection), in place
    h ^= h >> _U64(33)
    h *= _U64(0xFF51AFD7ED558CCD)
    h ^= h >> _U64(33)
    h *= _U64(0xC4CEB9FE1A85EC53)
    h ^= h >> _U64(33)
    return h


def _fmix_b(h: np.ndarray) -> np.ndarray:  # SplitMix64 finalizer (another bijection), in place
    h ^= h >> _U64(30)
    h *= _U64(0xBF58476D1CE4E5B9)
    h ^= h >> _U64(27)
    h *= _U64(0x94D049BB133111EB)
    h ^= h >> _U64(31)
    return h


def _absorb(
    lane: np.ndarray, word: np.ndarray, multiplier: np.uint64, shift: int, out: np.ndarray, scratch: np.ndarray
) -> np.ndarray:
    """One MurmurHash64A step: ``word`` mixed into ``lane``, the result written to ``out`` (returned)."""
    np.multiply(word, multiplier, out=out)
    np.right_shift(out, _U64(shift), out=scratch)
    out ^= scratch
    out *= multiplier
    out ^= lane
    out *= multiplier
    return out


class _Chain:
    """One lane: a MurmurHash64A chain taking in one word per row at a time (finalized by the caller).
    Each step writes to a spare buffer, which then swaps places with the lane (``spare`` then holds
    the lane before the step)."""

    def __init__(self, lane: np.ndarray, multiplier: np.uint64, shift: int) -> None:
        self.lane, self.spare, self.scratch = lane, np.empty(len(lane), _U64), np.empty(len(lane), _U64)
        self.multiplier, self.shift = multiplier, shift

    def take(self, word: np.ndarray) -> None:
        step = _absorb(self.lane, word, self.multiplier, self.shift, self.spare, self.scratch)
        self.lane, self.spare = step, self.lane


def _piece_lanes(
    data: np.ndarray, starts: np.ndarray, lengths: np.ndarray, both: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """MurmurHash64A-style chains over the 8-byte words of each piece (<= 64 bytes): lane A, and lane B
    when ``both``. Buffers are reused from word to word: fresh temporaries would cost page faults."""
    count = len(starts)
    width = max(8, int(-(-int(lengths.max()) // 8) * 8)) if count else 8
    same_length = count == 0 or int(lengths.min()) == int(lengths.max())
    if count and same_length and bool((np.diff(starts) == lengths[0]).all()):
        # Pieces of one length, one after the other (ids, UUIDs): the rows are a reshape of the data.
        length, first = int(lengths[0]), int(starts[0])
        rows = np.zeros((count, width), dtype=np.uint8)
        rows[:, :length] = data[first : first + length * count].reshape(count, length)
        words = rows.view("<u8")
    else:
        padded = np.zeros(len(data) + width, dtype=np.uint8)
        padded[: len(data)] = data
        # One overlapping W-byte item per byte offset: gathering starts copies each piece into a row.
        windows = np.ndarray((len(data) + 1,), dtype=np.dtype((np.void, width)), buffer=padded, strides=(1,))
        words = windows[starts].view("<u8").reshape(count, width // 8)
    size = lengths.astype(_U64)
    chains = [_Chain(_SEED_A ^ (size * _M_A), _M_A, _SHIFT_A)]
    if both:
        chains.append(_Chain(_SEED_B ^ (size * _M_B), _M_B, _SHIFT_B))
    masked = np.empty(count, _U64)
    # As many words as the longest piece has: pieces that are all empty take none, as an empty piece
    # beside longer ones takes none (its chain is left as it was).
    steps = -(-int(lengths.max()) // 8) if count else 0
    for k in range(steps):
        inactive = None
        if same_length:  # keys of one length (ids, UUIDs): one mask for every row, every row active
            left = int(lengths[0]) - 8 * k if count else 8
            word = words[:, k] if left >= 8 else np.bitwise_and(words[:, k], _WORD_MASKS[left], out=masked)
        else:
            remaining = lengths - 8 * k
            word = np.bitwise_and(words[:, k], _WORD_MASKS[np.clip(remaining, 0, 8)], out=masked)
            done = remaining <= 0
            inactive = done if done.any() else None
        for chain in chains:
            chain.take(word)
            if inactive is not None:  # shorter pieces are done: their chain must not depend on width
                chain.lane[inactive] = chain.spare[inactive]
    return chains[0].lane, (chains[1].lane if both else None)


def _string_lanes(array: pa.Array, both: bool) -> tuple[np.ndarray, np.ndarray | None]:
    count = len(array)
    large = pa.types.is_large_string(array.type) or pa.types.is_large_binary(array.type)
    buffers = array.buffers()
    raw_offsets = np.frombuffer(buffers[1], dtype=np.int64 if large else np.int32)
    offsets: np.ndarray = raw_offsets[array.offset : array.offset + count + 1].astype(np.int64)
    data = np.frombuffer(buffers[2], dtype=np.uint8) if buffers[2] is not None else np.zeros(0, np.uint8)
    starts = offsets[:-1]
    lengths = offsets[1:] - starts
    lane_b: np.ndarray | None
    if count and int(lengths.max()) > _PIECE:
        pieces = np.maximum(-(-lengths // _PIECE), 1)
        first = np.cumsum(pieces) - pieces
        owner = np.repeat(np.arange(count), pieces)
        piece_no = np.arange(len(owner)) - np.repeat(first, pieces)
        piece_a, piece_b = _piece_lanes(
            data, starts[owner] + piece_no * _PIECE, np.minimum(lengths[owner] - piece_no * _PIECE, _PIECE), both
        )
        # A multi-piece string sums its pieces mixed with their position ("ab"+"cd" != "cd"+"ab");
        # a one-piece string keeps its plain chain, so its hash never depends on its neighbours.
        multi = pieces[owner] > 1
        salt = piece_no[multi].astype(_U64) * _M_B
        ends = first + pieces - 1
        before = first - 1
        has_before = before >= 0
        piece_a[multi] = _fmix_a(piece_a[multi] ^ salt)
        # Wrapping sums per string (cumsum differences work modulo 2**64).
        summed_a = np.cumsum(piece_a)
        lane_a = summed_a[ends]
        lane_a[has_before] -= summed_a[before[has_before]]
        lane_b = None
        if piece_b is not None:
            piece_b[multi] = _fmix_b(piece_b[multi] + salt)
            summed_b = np.cumsum(piece_b)
            lane_b = summed_b[ends]
            lane_b[has_before] -= summed_b[before[has_before]]
    else:
        lane_a, lane_b = _piece_lanes(data, starts, lengths, both)
    size = lengths.astype(_U64)
    lane_a = _fmix_a(lane_a + size * _M_B)
    if lane_b is not None:
        lane_b = _fmix_b(lane_b ^ size * _M_A)
    return lane_a, lane_b


def _text_lanes(array: pa.Array, both: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`_string_lanes`, computed once per distinct value when the first values repeat (a status,
    a country code): a value's lanes depend on nothing but the value."""
    if pa.types.is_string_view(array.type) or pa.types.is_binary_view(array.type):
        array = array.cast(pa.large_string())  # offsets and data in two buffers, as hashed
    probe = array.slice(0, _DISTINCT_PROBE)
    if pc.count_distinct(probe).as_py() * _REPEATS_AT_LEAST <= len(probe):
        encoded = array.dictionary_encode()
        if len(encoded.dictionary):
            lane_a, lane_b = _string_lanes(encoded.dictionary, both)
            codes = encoded.indices  # a null's lanes are set by the caller
            codes = codes if codes.null_count == 0 else pc.fill_null(codes, arrow_numpy.scalar(0, codes.type))
            return _gathered(lane_a, codes), (_gathered(lane_b, codes) if lane_b is not None else None)
    return _string_lanes(array, both)


def _gathered(values: np.ndarray, codes: pa.Array) -> np.ndarray:
    """``values[codes]`` by Arrow's take (about 3x numpy's fancy indexing on int32 codes); read-only."""
    return arrow_numpy.numbers(arrow_numpy.arrow(values).take(codes))


def _fixed_words(column: pa.ChunkedArray) -> np.ndarray:
    """8 bytes per value, equal values giving equal words (-0.0 == 0.0, one NaN)."""
    kind = column.type
    if pa.types.is_floating(kind):
        values = arrow_numpy.numbers(pc.cast(column, pa.float64())) + 0.0
        values[np.isnan(values)] = np.nan
        return values.view("<u8")
    if pa.types.is_date(kind):
        column = pc.cast(column, pa.int32())
    elif pa.types.is_timestamp(kind):
        column = pc.cast(column, pa.timestamp(kind.unit))  # drop a time zone before the int view
    ints = arrow_numpy.numbers(pc.cast(column, pa.int64()))
    return np.ascontiguousarray(ints).view("<u8")


def _validity(column: pa.ChunkedArray) -> np.ndarray | None:
    if column.null_count == 0:
        return None
    return arrow_numpy.mask(pc.is_valid(column))


def _column_lanes(column: pa.ChunkedArray | pa.Array, both: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """The column's words for lane A (and lane B when ``both``); possibly read-only (never written to)."""
    if isinstance(column, pa.Array):
        column = pa.chunked_array([column], type=column.type)
    if len(column) == 0:
        return np.zeros(0, _U64), np.zeros(0, _U64) if both else None
    kind = column.type
    lane_b: np.ndarray | None
    if pa.types.is_null(kind):
        return np.full(len(column), _NULL_A), np.full(len(column), _NULL_B) if both else None
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind):
        parts = [_text_lanes(chunk, both) for chunk in column.chunks if len(chunk)]
        lane_a = _joined([p[0] for p in parts])
        lane_b = _joined([p[1] for p in parts if p[1] is not None]) if both else None
    else:  # a fixed-width value is its own word in both lanes (the row's chain mixes it)
        lane_a = _fixed_words(column)  # possibly the column's own buffer
        lane_b = lane_a if both else None
    valid = _validity(column)
    if valid is None:
        return lane_a, lane_b
    return np.where(valid, lane_a, _NULL_A), (np.where(valid, lane_b, _NULL_B) if lane_b is not None else None)


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def column_lanes(column: pa.ChunkedArray | pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """The two 64-bit words per value of one column that a row's lanes take in: a text value's two
    well-mixed lanes, a fixed-width value's own 8 bytes (in both); a null, a constant per lane."""
    lane_a, lane_b = _column_lanes(column, both=True)
    assert lane_b is not None
    return lane_a, lane_b


def _each_column(hash_one: Callable[[str], _Lanes], columns: Sequence[str], pool: Executor | None) -> Iterator[_Lanes]:
    """Each column's lanes, in order; hashed by ``pool`` when given (numpy and pyarrow release the
    GIL: two columns at a time use both Lambda vCPUs), else one after the other on this thread."""
    return pool.map(hash_one, columns) if pool is not None else map(hash_one, columns)


def row_lanes(
    table: pa.Table | pa.RecordBatch, columns: Sequence[str], pool: Executor | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Two 64-bit hashes per row over ``columns`` (in that order); each column hashed separately,
    so values are never concatenated and ("a", "bc") cannot meet ("ab", "c")."""
    chain_a = _Chain(np.full(table.num_rows, _SEED_A), _M_A, _SHIFT_A)
    chain_b = _Chain(np.full(table.num_rows, _SEED_B), _M_B, _SHIFT_B)
    for col_a, col_b in _each_column(lambda name: column_lanes(table[name]), columns, pool):
        chain_a.take(col_a)
        chain_b.take(col_b)
    return _fmix_a(chain_a.lane), _fmix_b(chain_b.lane)


def key_hash(table: pa.Table | pa.RecordBatch, columns: Sequence[str], pool: Executor | None = None) -> np.ndarray:
    """Lane A of :func:`row_lanes` over the key ``columns``, the 64-bit key hash (lane B not computed)."""
    chain = _Chain(np.full(table.num_rows, _SEED_A), _M_A, _SHIFT_A)
    for col_a, _ in _each_column(lambda name: _column_lanes(table[name], both=False), columns, pool):
        chain.take(col_a)
    return _fmix_a(chain.lane)


def row_hash_array(lane_a: np.ndarray, lane_b: np.ndarray) -> pa.Array:
    """The 128-bit row hash as stored in snapshot Parquet: 16 bytes, lane A then lane B, little-endian."""
    both = np.empty((len(lane_a), 2), dtype="<u8")
    both[:, 0], both[:, 1] = lane_a, lane_b
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), len(lane_a), [None, pa.py_buffer(both)])


def row_hash_lanes(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`row_hash_array`."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if len(array) == 0:
        return np.zeros(0, _U64), np.zeros(0, _U64)
    words = np.frombuffer(array.buffers()[1], dtype="<u8")[2 * array.offset : 2 * (array.offset + len(array))]
    pairs = words.reshape(-1, 2)
    return pairs[:, 0].copy(), pairs[:, 1].copy()


__all__ = ["column_lanes", "key_hash", "row_hash_array", "row_hash_lanes", "row_lanes"]
