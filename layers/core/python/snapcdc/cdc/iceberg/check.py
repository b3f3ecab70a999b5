"""What ``snapcdc verify`` checks of a table's Iceberg tables (``docs/iceberg.md``, "Verify").

- every Iceberg commit of ``<table>`` and ``<table>_changes`` names an accepted run record, each
  accepted snapshot is committed once, in snapshot order (the ledgers agree; the oldest may have
  expired);
- the current state of ``<table>`` equals the newest accepted snapshot: the same row count and the
  same 128-bit hash of every row (the engine's row hash over all the columns), the first differing
  row named when not;
- ``<table>_changes`` holds as many rows as the full load and the change files together.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from snapcdc.cdc.iceberg.commit import SNAPSHOT
from snapcdc.cdc.iceberg.names import changes_table, current_table
from snapcdc.cdc.iceberg.sync import IcebergLake
from snapcdc.cdc.iceberg.tables import shape
from snapcdc.engine.hashing import row_lanes
from snapcdc.lake.records import RunRecord


def _ledger_problem(lake: IcebergLake, name: str, accepted: Sequence[str]) -> tuple[str | None, object]:
    table = lake.catalog.load_table(lake.identifier(name)) if lake.catalog.table_exists(lake.identifier(name)) else None
    if table is None:
        return f"Iceberg table {lake.identifier(name)} does not exist", None
    named = []
    for entry in table.history():
        found = table.metadata.snapshot_by_id(entry.snapshot_id)
        if found is not None and found.summary is not None:
            named.append(found.summary.additional_properties.get(SNAPSHOT))
    unknown = [s for s in named if s not in accepted]
    if unknown:
        return f"{lake.identifier(name)}: commits of snapshots with no accepted run record: {unknown}", table
    # Snapshot expiry (docs/iceberg.md, "Maintenance") forgets the oldest commits: what is left must be
    # the newest accepted snapshots, in order.
    if not named or named != list(accepted)[len(accepted) - len(named) :]:
        missing = [s for s in accepted if s not in named]
        return (
            f"{lake.identifier(name)}: commits {named} are not the accepted snapshots {list(accepted)} in order"
            + (f" (missing {missing}: the next run or `snapcdc replay` commits them)" if missing else ""),
            table,
        )
    return None, table


def row_hashes(rows: pa.Table) -> np.ndarray:
    """Each row's 128-bit hash (over every column), sorted: equal arrays, equal multisets of rows."""
    lane_a, lane_b = row_lanes(rows, rows.column_names)
    order = np.lexsort((lane_b, lane_a))
    return np.stack([lane_a[order], lane_b[order]])


def check_iceberg(lake: IcebergLake, records: Sequence[RunRecord], expected: pa.Table) -> str | None:
    """None when the table's Iceberg tables agree with its ledger and ``expected`` (the newest accepted
    snapshot's data columns); else what is wrong."""
    if not records:
        return None
    table = records[-1].table
    accepted = [r.snapshot for r in records]
    problem, current = _ledger_problem(lake, current_table(table), accepted)
    if problem is not None:
        return problem
    problem, changes = _ledger_problem(lake, changes_table(table), accepted)
    if problem is not None:
        return problem
    names = shape(expected.schema).names
    state = current.scan().to_arrow()  # type: ignore[attr-defined]
    actual = pa.Table.from_arrays(
        [state[names[f.name]].cast(f.type) for f in expected.schema], schema=expected.schema.remove_metadata()
    )
    expected = expected.replace_schema_metadata(None)
    if actual.num_rows != expected.num_rows:
        return f"{lake.identifier(table)} holds {actual.num_rows} rows, snapshot {accepted[-1]} {expected.num_rows}"
    if not np.array_equal(row_hashes(actual), row_hashes(expected)):
        return f"{lake.identifier(table)} differs from snapshot {accepted[-1]} (row hashes differ)"
    first, *later = records
    wanted = first.stats.get("rows_snapshot", 0) + sum(
        r.stats.get(k, 0) for r in later for k in ("inserts", "updates", "deletes")
    )
    snapshot = changes.current_snapshot()  # type: ignore[attr-defined]
    held = int(snapshot.summary.additional_properties.get("total-records", 0)) if snapshot else 0
    if held != wanted:
        return f"{lake.identifier(changes_table(table))} holds {held} rows, the change files {wanted}"
    return None
