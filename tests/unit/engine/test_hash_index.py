"""The numpy hash table from 64-bit key hash to position."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from snapcdc.engine.hash_index import HashIndex

HASHES = st.integers(min_value=0, max_value=2**64 - 1)


@given(stored=st.lists(HASHES, unique=True, max_size=300), others=st.lists(HASHES, max_size=50))
def test_each_stored_hash_finds_its_position_and_no_other_hash_finds_one(stored: list[int], others: list[int]) -> None:
    # Given an index over distinct hashes anywhere in the 64-bit range (neighbours, shared high bits)
    index = HashIndex.build(np.array(stored, dtype=np.uint64))
    assert index is not None
    absent = [h for h in others if h not in set(stored)]
    # When stored and absent hashes are looked up
    found = index.positions(np.array([*stored, *absent], dtype=np.uint64))
    # Then each stored hash gets its own position, every other -1
    assert found.tolist() == [*range(len(stored)), *([-1] * len(absent))]


def test_random_hashes_map_back_to_their_places() -> None:
    # Given 100,000 distinct random 64-bit hashes in an index, in random order, and as many others
    rng = np.random.default_rng(7)
    hashes = np.unique(rng.integers(0, 2**64 - 1, 200_000, dtype=np.uint64, endpoint=True))
    stored, absent = rng.permutation(hashes[::2]), hashes[1::2]
    index = HashIndex.build(stored)
    assert index is not None
    # When both halves are looked up; then each stored hash maps to its own place, the others to -1
    assert (stored[index.positions(stored)] == stored).all()
    assert (index.positions(absent) == -1).all()


def test_a_repeated_hash_gives_no_index() -> None:
    # Given a hash that occurs twice, among hashes that share its slot or its high bits
    hashes = np.array([5, 5 + (1 << 32), 2**64 - 1, 9, 5], dtype=np.uint64)
    # When built; then None (the caller joins on the keys instead), and an index without the repeat
    assert HashIndex.build(hashes) is None
    assert HashIndex.build(hashes[:4]) is not None
