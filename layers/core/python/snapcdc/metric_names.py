"""CloudWatch metric names, written once: both handlers emit them, the stack's dashboard and alarms read them.

Constants only (no Powertools import), so the CDK app can import this module without the runtime.
Metrics are Powertools EMF metrics with the dimension ``service`` (the function's
POWERTOOLS_SERVICE_NAME), plus ``table`` for the per-table ones.
"""

from __future__ import annotations

# -- the CDC function, per table ---------------------------------------------------------------
ROWS_READ = "RowsRead"
INSERTS = "Inserts"
UPDATES = "Updates"
DELETES = "Deletes"
QUARANTINED = "Quarantined"
UPDATES_WITHOUT_DATE_BUMP = "UpdatesWithoutDateBump"
DURATION_SECONDS = "DurationSeconds"
DELETE_GUARD_REFUSED = "DeleteGuardRefused"
MALFORMED_SNAPSHOTS = "MalformedSnapshots"

# -- the CDC function, per invocation ----------------------------------------------------------
SNAPSHOTS_PROCESSED = "SnapshotsProcessed"
CDC_FAILED = "CdcFailed"  # tables that failed for good in one invocation (not retried, so not in the DLQ)

# -- the extract function (per invocation, and per table where a table is named) ---------------
EXTRACTED_BYTES = "ExtractedBytes"
TABLES_UPLOADED = "TablesUploaded"
SKIPPED_UNCHANGED = "SkippedUnchanged"
TABLES_MISSING = "TablesMissing"
SKIPPED_UNCHANGED_VERSION = "SkippedUnchangedVersion"
EXTRACT_FAILED = "ExtractFailed"

# The engine's counts (``DiffStats`` fields) that become per-table CDC metrics, by metric name.
CDC_STAT_METRICS = {
    "rows_new": ROWS_READ,
    "inserts": INSERTS,
    "updates": UPDATES,
    "deletes": DELETES,
    "quarantined": QUARANTINED,
    "updates_without_date_bump": UPDATES_WITHOUT_DATE_BUMP,
}

CDC_TABLE_METRICS = (
    *CDC_STAT_METRICS.values(),
    DURATION_SECONDS,
    DELETE_GUARD_REFUSED,
    MALFORMED_SNAPSHOTS,
)
CDC_INVOCATION_METRICS = (SNAPSHOTS_PROCESSED, CDC_FAILED)
EXTRACT_TABLE_METRICS = (EXTRACTED_BYTES, SKIPPED_UNCHANGED, TABLES_MISSING)
EXTRACT_INVOCATION_METRICS = (
    EXTRACTED_BYTES,
    TABLES_UPLOADED,
    SKIPPED_UNCHANGED,
    TABLES_MISSING,
    SKIPPED_UNCHANGED_VERSION,
    EXTRACT_FAILED,
)
