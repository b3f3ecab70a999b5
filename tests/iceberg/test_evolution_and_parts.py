"""Schema evolution by Iceberg's rules, a snapshot of N files, and a foreign part file refused."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.types import DoubleType, LongType
from snapcdc.cdc.iceberg import files as datafiles
from snapcdc.cdc.iceberg.commit import SNAPSHOT, commit_files, committed_snapshots
from snapcdc.cdc.iceberg.files import PartFile, PartFileError
from snapcdc.cdc.iceberg.sync import IcebergLake, SnapshotRows
from snapcdc.cdc.iceberg.tables import load_or_create, shape

S1, S2, S3 = "20260105T060000Z", "20260105T100000Z", "20260105T140000Z"


def _rows(tmp_path, snap: str, base: str | None, table: pa.Table, changed: int) -> SnapshotRows:
    state, changes = tmp_path / f"state-{snap}.parquet", tmp_path / f"changes-{snap}.parquet"
    pq.write_table(table, state)
    n = table.num_rows
    cdc = table.append_column("_cdc_operation", pa.array(["U"] * n)).append_column(
        "_cdc_timestamp", pa.array([None] * n, pa.timestamp("us", tz="UTC"))
    )
    pq.write_table(table if base is None else cdc, changes)
    return SnapshotRows(snap, base, (state,), (changes,), {"rows_snapshot": n, "updates": changed})


def test_int_to_long_and_float_to_double_are_promoted_in_place(lake: IcebergLake, tmp_path):
    # Given: a table written with 32-bit columns
    narrow = pa.table({"id": ["a", "b"], "n": pa.array([1, 2], pa.int32()), "f": pa.array([0.5, 1.5], pa.float32())})
    wide = pa.table({"id": ["a", "b"], "n": pa.array([1, 2**40]), "f": pa.array([0.5, 1e300])})
    lake.commit_snapshot("nums", _rows(tmp_path, S1, None, narrow, 0), tmp_path)
    ids = {f.name: f.field_id for f in lake.catalog.load_table(lake.identifier("nums")).schema().fields}
    # When: the next snapshot's columns are 64-bit
    lake.commit_snapshot("nums", _rows(tmp_path, S2, S1, wide, 2), tmp_path)
    # Then: same columns (same field ids), promoted types, both snapshots read back whole
    table = lake.catalog.load_table(lake.identifier("nums"))
    assert {f.name: f.field_id for f in table.schema().fields} == ids
    assert table.schema().find_field("n").field_type == LongType()
    assert table.schema().find_field("f").field_type == DoubleType()
    by_snap = committed_snapshots(table)
    assert table.scan(snapshot_id=by_snap[S1]).to_arrow().sort_by("id")["n"].to_pylist() == [1, 2]
    assert table.scan(snapshot_id=by_snap[S2]).to_arrow().sort_by("id")["n"].to_pylist() == [1, 2**40]


def test_a_snapshot_of_several_files_commits_one_data_file_per_file(lake: IcebergLake, tmp_path):
    # Given: a snapshot whose output is three files in the bucket (the Spark job's parts), listed by key
    rows = pa.table({"id": [f"k{i}" for i in range(30)], "qty": list(range(30))})
    keys = []
    for n, chunk in enumerate(rows.to_batches(max_chunksize=10)):
        local = tmp_path / f"part-{n}.parquet"
        pq.write_table(pa.Table.from_batches([chunk]), local)
        keys.append(f"snapshots/parts/part-{n:05d}.parquet")
        lake.store.upload_file(local, keys[-1])
    snapshot = SnapshotRows(S1, None, tuple(keys), tuple(keys), {"rows_snapshot": 30, "inserts": 30})
    # When
    (changes, state) = lake.commit_snapshot("parts", snapshot, tmp_path)
    # Then: one Iceberg data file per file of rows, the rows of all of them, the snapshot named
    table = lake.catalog.load_table(lake.identifier("parts"))
    assert len(state.files) == 3 and {t.file.file_path for t in table.scan().plan_files()} == set(state.files)
    assert sorted(table.scan().to_arrow()["qty"].to_pylist()) == list(range(30))
    assert table.current_snapshot().summary[SNAPSHOT] == S1
    assert len(changes.files) == 3
    # and a retry commits nothing, and deletes none of the listed files
    again = lake.commit_snapshot("parts", snapshot, tmp_path)
    assert all(outcome.already for outcome in again)
    assert all(lake.store.exists(f.split("/", 3)[3]) for f in state.files)


def test_a_part_file_of_another_schema_is_refused_and_nothing_is_committed(lake: IcebergLake, tmp_path):
    # Given: a part file written without the table's field ids
    rows = pa.table({"id": ["a"], "qty": [1]})
    identifier = lake.identifier("parts")
    load_or_create(lake.catalog, lake.store, identifier, shape(rows.schema), lake.retention)
    local = tmp_path / "foreign.parquet"
    pq.write_table(rows, local)
    key = lake.store.layout.iceberg_data_key("parts", datafiles.new_file_name(S1))
    lake.store.upload_file(local, key)
    # When / Then
    with pytest.raises(PartFileError, match="field id"):
        commit_files(
            lake.catalog, lake.store, identifier, S1, None, [PartFile(key, 1, local.stat().st_size)], {}, "replace"
        )
    assert lake.catalog.load_table(identifier).current_snapshot() is None
