"""``snapcdc verify``: replay ``full-load/`` plus every CDC file of a table in snapshot order and
check that the result equals the table's newest accepted snapshot, row for row.

It also checks for gaps: a raw snapshot with no run record, an accepted snapshot with no CDC
file, or a CDC file that no run record accounts for.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from snapcdc.changelog import apply_changes, data_columns, table_differences
from snapcdc.config import TableConfig
from snapcdc.processor import TableProcessor
from snapcdc.store import S3Store


@dataclass(frozen=True)
class VerifyResult:
    table: str
    ok: bool
    message: str
    rows: int = 0
    snapshots: int = 0
    cdc_files: int = 0

    def line(self) -> str:
        verdict = "OK  " if self.ok else "FAIL"
        return (
            f"{verdict} {self.table}: {self.message} "
            f"(snapshots={self.snapshots}, cdc_files={self.cdc_files}, rows={self.rows})"
        )


def _read_parquet(store: S3Store, key: str) -> pa.Table:
    body = store.get_bytes(key)
    if body is None:
        raise FileNotFoundError(f"s3://{store.bucket}/{key} is missing")
    return pq.read_table(pa.BufferReader(body))


def verify_table(store: S3Store, table: TableConfig) -> VerifyResult:
    processor = TableProcessor(store, table)
    processed = processor.processed_snapshots()
    unprocessed = sorted(set(store.raw_snapshots(table.name)) - set(processed))
    records = [r for r in (processor.run_record(s) for s in processed) if r is not None and r.accepted]

    def fail(message: str, **counts: int) -> VerifyResult:
        return VerifyResult(table.name, False, message, snapshots=len(records), **counts)

    if unprocessed:
        return fail(f"raw snapshots never processed: {', '.join(unprocessed)}")
    if not records:
        return VerifyResult(table.name, True, "no accepted snapshot yet")
    first, *later = records
    if first.outputs.get("full_load") is None:
        return fail(f"first accepted snapshot {first.snapshot} has no full load")
    expected_cdc = {r.outputs.get("cdc") for r in later}
    actual_cdc = set(store.list_keys(store.layout.cdc_prefix(table.name)))
    if None in expected_cdc or expected_cdc != actual_cdc:
        return fail(
            f"cdc files do not match run records: missing {sorted(k for k in expected_cdc - actual_cdc if k)}, "
            f"unexpected {sorted(actual_cdc - expected_cdc)}"
        )
    state = _read_parquet(store, store.layout.full_load_key(table.name))
    for record in later:
        state = apply_changes(state, _read_parquet(store, str(record.outputs["cdc"])), table.primary_key)
    newest = records[-1]
    expected = data_columns(_read_parquet(store, str(newest.outputs["snapshot"])))
    difference = table_differences(state, expected, table.primary_key)
    counts = {"rows": expected.num_rows, "cdc_files": len(later)}
    if difference is not None:
        return fail(f"replay of the change stream differs from snapshot {newest.snapshot}: {difference}", **counts)
    message = f"change stream reproduces snapshot {newest.snapshot}"
    return VerifyResult(table.name, True, message, snapshots=len(records), **counts)


def verify(store: S3Store, tables: list[TableConfig]) -> list[VerifyResult]:
    return [verify_table(store, table) for table in tables]
