"""Rows of two tables with the same key (the SCD2 feed's join), without pyarrow's query engine."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given
from hypothesis import strategies as st
from snapcdc.engine.keys import KeyPairs, equal_keys

KEYS = st.tuples(st.integers(min_value=-3, max_value=3), st.sampled_from(["a", "b", "ab", "é", ""]))


def _table(keys: list[tuple[int, str]]) -> pa.Table:
    return pa.table(
        {
            "id": pa.array([k[0] for k in keys], pa.int64()),
            "code": pa.array([k[1] for k in keys], pa.string()),
            "payload": pa.array(range(len(keys)), pa.int64()),
        }
    )


def _expected(left: list[tuple[int, str]], right: list[tuple[int, str]]) -> list[tuple[int, int]]:
    return [(i, j) for i, key in enumerate(left) for j, other in enumerate(right) if key == other]


def _pairs(found: KeyPairs) -> list[tuple[int, int]]:
    return list(zip(found.left.tolist(), found.right.tolist(), strict=True))


@given(st.lists(KEYS, max_size=40), st.lists(KEYS, max_size=40, unique=True))
def test_rows_pair_exactly_where_their_two_column_keys_are_equal(
    left: list[tuple[int, str]], right: list[tuple[int, str]]
) -> None:
    # Given a two-column key, repeated or not on the left, distinct on the right
    # When the rows with equal keys are paired
    found = equal_keys(_table(left), _table(right), ["id", "code"])
    # Then the pairs are those of an inner join, in the order of the left rows
    assert _pairs(found) == _expected(left, right)


@given(st.lists(KEYS, min_size=1, max_size=30), st.lists(KEYS, min_size=2, max_size=30))
def test_a_key_repeated_on_the_right_is_still_joined_exactly(
    left: list[tuple[int, str]], right: list[tuple[int, str]]
) -> None:
    # Given a right side whose keys may repeat (the hash lookup refuses repeated hashes: the exact join runs)
    right = [*right, right[0]]
    # When paired
    found = equal_keys(_table(left), _table(right), ["id", "code"])
    # Then every pair of equal keys is found, in the order of the left rows
    assert sorted(_pairs(found)) == sorted(_expected(left, right))
    assert found.left.tolist() == sorted(found.left.tolist())


def test_null_keys_pair_with_nothing() -> None:
    # Given a null key on both sides (never a match, as in a join) beside a real one
    left = pa.table({"id": pa.array([None, 1], pa.int64())})
    right = pa.table({"id": pa.array([1, None], pa.int64())})
    # When paired
    found = equal_keys(left, right, ["id"])
    # Then only the real key pairs
    assert _pairs(found) == [(1, 0)]


def test_an_empty_side_pairs_nothing() -> None:
    # Given one side without rows
    rows = _table([(1, "a")])
    # When paired either way
    # Then no pair, as integer positions
    for found in (equal_keys(rows, rows.slice(0, 0), ["id"]), equal_keys(rows.slice(0, 0), rows, ["id"])):
        assert _pairs(found) == []
        assert found.left.dtype == np.int64
