"""The CDC engine: diff a new snapshot of a table against the previous accepted one.

Pure (pyarrow/numpy, no AWS). :func:`diff_files` streams a CSV file; :func:`diff_tables` does the same
on in-memory Arrow tables (tests, small inputs). Both run one batch pipeline. ``docs/design.md``
(section "CDC semantics") is the contract; ``docs/engine.md`` describes how the engine is built.

* The old side (:mod:`.old_side`) is the previous accepted snapshot. Its Parquet copy stores a 64-bit
  key hash and a 128-bit row hash per row (:mod:`.hash_columns`), so the old side costs one read of the
  key, date and hash columns; its full rows are read back only for the keys that were deleted (or
  carried forward).
* The new side (:mod:`.new_side`) is streamed in batches that pyarrow's reader threads
  (:mod:`.csv_input`) convert straight to the table's stable types (:mod:`.schema`). A value that does
  not convert (a column to widen, a value not fitting its configured type, a malformed line) stops the
  fast read, and the file is read again as text and typed exactly, column by column: rare, and it
  gives the same result.
* The pipeline (:mod:`.differ`) hashes each batch (:mod:`.hashing`), matches it to the old side,
  checks its keys (:mod:`.keys`) and streams its accepted rows to a sink (:mod:`.sinks`: memory, a
  Parquet file written by :mod:`.parquet_output`, or the scratch copy of a plain old file).
* :mod:`.api` holds the two entry points; :mod:`.spec` the names, results and errors they share.

Importing the engine creates no thread: every thread pool belongs to the object that uses it.
"""

from snapcdc.engine.api import diff_files, diff_tables
from snapcdc.engine.hash_columns import data_only, has_cached_hashes
from snapcdc.engine.spec import (
    CDC_OPERATION,
    CDC_TIMESTAMP,
    KEY_HASH,
    QUARANTINE_REASON,
    ROW_HASH,
    SOURCE_RECORD,
    DeleteGuardError,
    DiffOutcome,
    DiffResult,
    DiffStats,
    InputError,
    TableSpec,
)

__all__ = [
    "CDC_OPERATION",
    "CDC_TIMESTAMP",
    "KEY_HASH",
    "QUARANTINE_REASON",
    "ROW_HASH",
    "SOURCE_RECORD",
    "DeleteGuardError",
    "DiffOutcome",
    "DiffResult",
    "DiffStats",
    "InputError",
    "TableSpec",
    "data_only",
    "diff_files",
    "diff_tables",
    "has_cached_hashes",
]
