"""A hash table from 64-bit key hash to position, in numpy: open addressing with linear probing,
built and probed vectorized (every pending entry takes one step per round).

Pure (numpy). The key hashes are well mixed already (:mod:`snapcdc.engine.hashing`), so their low
bits pick the slot. The table holds positions only (int32 up to 2**31 rows); a probe compares the
hash at the position it finds, so the table costs 4-8 bytes a slot, about a third of the memory of a
general-purpose hash index over the same values.
"""

from __future__ import annotations

import numpy as np

_EMPTY = -1
_LOAD = 0.5  # at most this share of the slots used: ~1.5 probes per hit, ~2.5 per miss


class HashIndex:
    """Positions of distinct 64-bit hashes; :meth:`build` gives None when a hash occurs twice."""

    def __init__(self, hashes: np.ndarray, table: np.ndarray) -> None:
        self.hashes = hashes
        self.table = table
        self.mask = np.uint64(len(table) - 1)

    @classmethod
    def build(cls, hashes: np.ndarray) -> HashIndex | None:
        """The index of ``hashes`` (uint64; position i holds hashes[i]), None when two are equal."""
        hashes = np.ascontiguousarray(hashes, dtype=np.uint64)
        count = len(hashes)
        size = 1 << max(4, int(np.ceil(np.log2(max(count, 1) / _LOAD))))
        table = np.full(size, _EMPTY, dtype=np.int32 if count < 2**31 else np.int64)
        mask = np.uint64(size - 1)
        pending = np.arange(count, dtype=table.dtype)
        slots = (hashes & mask).astype(np.int64)
        # Subsets are taken by position (flatnonzero, take), not by boolean mask: numpy's masked copy
        # is several times slower on the scattered masks of a hash table, and the first round, where
        # every slot is free, copies nothing.
        first = True
        while len(pending):
            if first:
                claim, at = pending, slots
            else:
                free = np.flatnonzero(table[slots] == _EMPTY)
                claim, at = pending.take(free), slots.take(free)
            first = False
            table[at] = claim  # of several claiming one slot, one is stored: the others probe on
            # Everyone else meets the entry now in its slot: the same hash there is a repeated hash.
            left = np.flatnonzero(table[slots] != pending)
            pending, slots = pending.take(left), slots.take(left)
            if len(pending) and bool((hashes[table[slots]] == hashes[pending]).any()):
                return None
            slots = (slots + 1) & int(mask)
        return cls(hashes, table)

    def positions(self, wanted: np.ndarray) -> np.ndarray:
        """For each of ``wanted`` (uint64 hashes), its position, or -1."""
        wanted = np.asarray(wanted, dtype=np.uint64)
        found = np.full(len(wanted), -1, dtype=np.int64)
        pending = np.arange(len(wanted))
        slots = (wanted & self.mask).astype(np.int64)
        size_mask = int(self.mask)
        while len(pending):
            occupant = self.table[slots]
            filled = np.flatnonzero(occupant != _EMPTY)
            pending, slots, occupant = pending.take(filled), slots.take(filled), occupant.take(filled)
            hit = self.hashes[occupant] == wanted[pending]
            at = np.flatnonzero(hit)
            found[pending.take(at)] = occupant.take(at)
            miss = np.flatnonzero(~hit)
            pending, slots = pending.take(miss), (slots.take(miss) + 1) & size_mask
        return found
