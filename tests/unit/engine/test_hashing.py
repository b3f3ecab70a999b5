"""The stored hashes (snapcdc.engine.hashing): their values are part of every snapshot already written."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st
from snapcdc.engine import hashing

# Values written by the engine (text lanes since HASH_VERSION 1, key and row hashes since version 2).
# A change here makes every stored snapshot's rows look updated on the next run: it needs a new
# HASH_VERSION (the engine then recomputes a stored snapshot's hashes once), not a new expected value.
VALUES = ["", "a", "abcdefgh", "44d5cbf1-2360-49ab-afff-4f6cd5e11a87", "x" * 130, 'é\ufeff;"\n', None]
LANE_A = [
    0x7ACDBB98B1344213,
    0xD07EE24460C95E45,
    0x81A2F97ED6E7CA82,
    0x2B80AEDD00B0B866,
    0xD8C0194B78E8D92D,
    0x916A1905393D094C,
    0xA4093822299F31D0,
]
LANE_B = [
    0xDFC7A99951F24649,
    0xD7E8EA516C652C4C,
    0xFB59DB42F75B1E8C,
    0xF2CE86892B3173EC,
    0x869038450A085BDF,
    0xB8B6DF5A92869D75,
    0x082EFA98EC4E6C89,
]
UUIDS = ["44d5cbf1-2360-49ab-afff-4f6cd5e11a87", "29d59c00-ecf1-4b90-a65a-0d405e65dde9"]


def test_column_hashes_keep_their_stored_values() -> None:
    # Given strings of every shape: empty, one word, one piece, a UUID, several pieces, odd bytes, null
    column = pa.chunked_array([pa.array(VALUES, pa.string())])
    # When hashed / Then both lanes are the values stored snapshots hold
    lane_a, lane_b = hashing.column_lanes(column)
    assert [int(v) for v in lane_a] == LANE_A
    assert [int(v) for v in lane_b] == LANE_B


def test_key_hash_is_lane_a_of_the_row_hash_over_the_key() -> None:
    # Given keys of one length (the reshaped fast path) and a composite key with a null
    table = pa.table({"id": pa.array(UUIDS), "n": pa.array([7, None], pa.int64())})
    # When the key hash is computed without lane B / Then it is lane A of the row hash, as stored
    assert [int(v) for v in hashing.key_hash(table, ["id"])] == [0x4B67A3403D7C4EC9, 0x4AD1DCAACD78F6C2]
    assert [int(v) for v in hashing.key_hash(table, ["id", "n"])] == [0x09EBDFD86EF752F0, 0x577BA563F23B594A]
    assert (hashing.key_hash(table, ["id", "n"]) == hashing.row_lanes(table, ["id", "n"])[0]).all()


def test_row_hashes_over_fixed_width_columns_keep_their_stored_values() -> None:
    # Given every fixed-width kind beside text, with zeros, -0.0, NaN, the epoch and nulls
    table = pa.table(
        {
            "i": pa.array([0, -1, None], pa.int64()),
            "f": pa.array([-0.0, float("nan"), 2.5]),
            "b": pa.array([True, None, False]),
            "ts": pa.array([datetime(2025, 7, 16, 9, 0, 45, 831000), None, datetime(1970, 1, 1)], pa.timestamp("us")),
            "d": pa.array([date(2025, 1, 1), date(1970, 1, 1), None]),
            "s": pa.array(["a", None, ""]),
        }
    )
    # When hashed / Then both lanes are the values stored snapshots hold
    lane_a, lane_b = hashing.row_lanes(table, table.column_names)
    assert [int(v) for v in lane_a] == [0xFFEF128387824DDE, 0x23E57270EF491CDA, 0x49A3844127F16747]
    assert [int(v) for v in lane_b] == [0xCF9A53214CB15789, 0x8FF71ABC17410FA5, 0xE55737C1B57A661A]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)), min_size=1, max_size=50))
def test_a_null_never_hashes_as_a_value_not_even_the_null_word(values: list[int | None]) -> None:
    """A fixed-width value is its own word in both lanes; a null is a different word in each lane,
    so no value (the null's lane A or lane B word included) gives a null's row hash."""
    # Given the values, among them the null words themselves as int64
    words = [int(np.array(w, dtype=np.uint64).view(np.int64)) for w in (hashing._NULL_A, hashing._NULL_B)]
    column = pa.array([*values, *words, None], pa.int64())
    # When each is hashed as a one-column row
    lane_a, lane_b = hashing.row_lanes(pa.table({"v": column}), ["v"])
    # Then the rows holding a value never share both lanes with the null row
    pairs = list(zip(lane_a.tolist(), lane_b.tolist(), strict=True))
    null_pair = pairs[-1]
    assert all(pair != null_pair for pair, v in zip(pairs, column.to_pylist(), strict=True) if v is not None)


def test_strings_of_one_length_hash_as_they_do_among_others() -> None:
    # Given UUIDs alone (one length: rows reshaped from the data) and among shorter values (gathered)
    alone = hashing.column_lanes(pa.array(UUIDS))
    mixed = hashing.column_lanes(pa.array([*UUIDS, "short"]))
    # Then each UUID has one hash either way
    assert (alone[0] == mixed[0][:2]).all() and (alone[1] == mixed[1][:2]).all()


@given(st.integers(min_value=1, max_value=20))
def test_empty_strings_alone_hash_as_they_do_among_others(count: int) -> None:
    # Given empty strings alone (one length, zero: rows reshaped from the data) and beside longer values
    alone = hashing.column_lanes(pa.array([""] * count, pa.string()))
    mixed = hashing.column_lanes(pa.array(["", "abc"], pa.string()))
    # Then an empty string has one hash either way: the stored one (a batch of empty strings once
    # hashed them differently, so that the same row looked updated next to other values: HASH_VERSION 3)
    assert [int(v) for v in alone[0]] == [LANE_A[0]] * count == [int(mixed[0][0])] * count
    assert [int(v) for v in alone[1]] == [LANE_B[0]] * count == [int(mixed[1][0])] * count


def test_repeated_text_hashes_as_each_value_alone() -> None:
    # Given a column whose values repeat (hashed once per distinct value), nulls and a late newcomer
    repeated = [VALUES[i % len(VALUES)] for i in range(5_000)] + ["late, not in the first rows"]
    # When hashed
    lane_a, lane_b = hashing.column_lanes(pa.array(repeated, pa.string()))
    # Then every value has the stored hash it has alone
    alone_a, alone_b = hashing.column_lanes(pa.array(VALUES + repeated[-1:], pa.string()))
    expected = [VALUES.index(v) if v in VALUES else len(VALUES) for v in repeated]
    assert [int(v) for v in lane_a] == [int(alone_a[i]) for i in expected]
    assert [int(v) for v in lane_b] == [int(alone_b[i]) for i in expected]
    assert [int(v) for v in lane_a[: len(VALUES)]] == LANE_A


def test_text_that_is_all_null_or_repeats_one_value_hashes_as_alone() -> None:
    # Given columns a distinct-value shortcut could mishandle: all null, one value, one value and nulls
    for values in ([None] * 3_000, ["a"] * 3_000, ["a", None] * 1_500):
        # When hashed / Then each row has its value's own hash
        lane_a, lane_b = hashing.column_lanes(pa.array(values, pa.string()))
        expected = {None: (LANE_A[-1], LANE_B[-1]), "a": (LANE_A[1], LANE_B[1])}
        assert [(int(a), int(b)) for a, b in zip(lane_a, lane_b, strict=True)] == [expected[v] for v in values]


def test_text_in_a_view_array_hashes_as_plain_text() -> None:
    # Given the same values, repeated and not, as string and as string_view arrays
    for values in ([v for _ in range(400) for v in VALUES], VALUES):
        plain = hashing.column_lanes(pa.array(values, pa.string()))
        # When the view array is hashed / Then each value has its stored hash
        view = hashing.column_lanes(pa.array(values, pa.string_view()))
        assert (plain[0] == view[0]).all() and (plain[1] == view[1]).all()
