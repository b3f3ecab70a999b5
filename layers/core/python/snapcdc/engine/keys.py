"""Primary-key checks on a batch: which rows have a null or empty key, which keys occur twice
(found on the 64-bit key hash first, then proven on the real key values)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def null_key_mask(keys: pa.Table | pa.RecordBatch) -> np.ndarray:
    mask = np.zeros(keys.num_rows, dtype=bool)
    for column in keys.columns:
        missing = pc.is_null(column)
        if pa.types.is_string(column.type):
            missing = pc.or_(missing, pc.fill_null(pc.equal(column, ""), False))
        mask |= mask_of(missing)
    return mask


def duplicate_rows(keys: pa.Table, key_hash: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Positions (among ``rows``) whose key occurs more than once; exact on real key values."""
    if len(rows) < 2 or not _repeats(key_hash[rows]):
        return np.zeros(0, dtype=np.int64)
    hashes = pa.array(key_hash[rows])
    counts = pc.value_counts(hashes)
    repeated = counts.field("values").filter(pc.greater(counts.field("counts"), 1))
    if len(repeated) == 0:
        return np.zeros(0, dtype=np.int64)
    candidates = rows[mask_of(pc.is_in(hashes, value_set=repeated))]
    names = list(keys.column_names)
    table = keys.take(candidates).append_column("__row", pa.array(candidates))
    grouped = table.group_by(names).aggregate([("__row", "count")])
    joined = table.join(grouped, keys=names)
    repeated_rows = joined.filter(pc.greater(joined["__row_count"], 1))["__row"]
    return np.sort(repeated_rows.to_numpy())


def _repeats(hashes: np.ndarray) -> bool:
    """Whether a value occurs twice (numpy's vectorized sort is several times faster than a hash table)."""
    ordered = np.sort(hashes)
    return bool((ordered[1:] == ordered[:-1]).any())


def mask_of(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=bool)
