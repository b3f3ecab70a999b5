"""Primary-key checks on a batch: which rows have a null or empty key, which keys occur twice
(found on the 64-bit key hash first, then proven on the real key values)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from snapcdc.engine import arrow_numpy


def null_key_mask(keys: pa.Table | pa.RecordBatch) -> np.ndarray:
    mask = np.zeros(keys.num_rows, dtype=bool)
    for column in keys.columns:
        mask |= mask_of(pc.is_null(column))
        if pa.types.is_string(column.type):
            mask |= mask_of(pc.equal(column, arrow_numpy.scalar("", column.type)))
    return mask


def duplicate_rows(keys: pa.Table, key_hash: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions (among ``rows``) whose key occurs more than once; exact on real key values."""
    if len(rows) < 2 or not _repeats(key_hash[rows]):
        return np.zeros(0, dtype=np.int64)
    hashes = arrow_numpy.arrow(key_hash[rows])
    counts = pc.value_counts(hashes)
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), arrow_numpy.scalar(1, pa.int64())))
    if len(repeated) == 0:
        return np.zeros(0, dtype=np.int64)
    candidates = rows[mask_of(pc.is_in(hashes, value_set=repeated))]
    names = list(keys.column_names)
    table = keys.take(arrow_numpy.positions(candidates)).append_column("__row", arrow_numpy.arrow(candidates))
    grouped = table.group_by(names).aggregate([("__row", "count")])
    joined = table.join(grouped, keys=names)
    repeated_rows = joined.filter(pc.greater(joined["__row_count"], 1))["__row"]
    return np.sort(arrow_numpy.numbers(repeated_rows))


def _repeats(hashes: np.ndarray) -> bool:
    """Whether a value occurs twice (numpy's vectorized sort is several times faster than a hash table)."""
    ordered = np.sort(hashes)
    return bool((ordered[1:] == ordered[:-1]).any())


def mask_of(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return arrow_numpy.mask(column)
