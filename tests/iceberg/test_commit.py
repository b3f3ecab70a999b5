"""Iceberg commits on moto's Glue and S3 through pyiceberg's Glue catalog: one per source snapshot,
in order, exactly once, retried on conflict, nothing visible after a crash before the commit."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from pyiceberg.catalog.glue import GlueCatalog
from snapcdc.cdc.iceberg.catalog import glue_catalog
from snapcdc.cdc.iceberg.commit import SNAPSHOT, CommitOrderError, committed_snapshots
from snapcdc.cdc.iceberg.sync import IcebergLake, SnapshotRows
from snapcdc.cdc.iceberg.tables import shape

from tests.iceberg.conftest import Source, sorted_rows

V1 = {"id": ["1", "2", "3"], "name": ["ana", "bia", "caio"], "qty": ["10", "20", "30"]}
V2 = {"id": ["1", "3", "4"], "name": ["ana", "caio", "davi"], "qty": ["11", "30", "40"]}  # U 1, D 2, I 4
V3 = V2  # an empty change set
V4 = {**V2, "score": ["1.5", "2.5", None]}  # a column added
V5 = {**V4, "qty": ["11", "30", "forty"]}  # qty widens from bigint to text


def _as_source(rows: Any, names: dict[str, str]) -> list[dict[str, Any]]:
    """Iceberg rows under the source's column names (the columns the source snapshot has)."""
    back = {iceberg: source for source, iceberg in names.items()}
    return [{back[k]: v for k, v in row.items() if k in back} for row in rows.to_pylist()]


def test_each_iceberg_snapshot_reads_back_as_the_source_snapshot_it_names(lake: IcebergLake, source: Source, tmp_path):
    # Given
    snapshots = [source.snapshot(rows) for rows in (V1, V2, V3, V4, V5)]
    # When
    for rows in snapshots:
        lake.commit_snapshot("items", rows, tmp_path)
    # Then: one commit per source snapshot, in order, each reading back as exactly that snapshot
    table = lake.catalog.load_table(lake.identifier("items"))
    assert list(committed_snapshots(table)) == [s.snapshot for s in snapshots]
    for snap, iceberg_id in committed_snapshots(table).items():
        expected = source.rows_of(snap)
        read = table.scan(snapshot_id=iceberg_id).to_arrow()
        names = shape(expected.schema).names
        assert sorted(_as_source(read, names), key=lambda r: r["id"]) == sorted_rows(expected)
        assert table.snapshot_by_id(iceberg_id).summary[SNAPSHOT] == snap
    # the empty change set committed no data file
    empty = table.snapshot_by_id(committed_snapshots(table)[snapshots[2].snapshot])
    assert empty.summary["snapcdc.inserts"] == "0" and "added-data-files" not in empty.summary.additional_properties
    # the forbidden change kept the old values under the retired column
    assert [f.name for f in table.schema().fields] == ["id", "name", "qty__long", "score", "qty"]
    # the change stream: one append per snapshot, the same rows as the change sets
    changes = lake.catalog.load_table(lake.identifier("items_changes"))
    assert list(committed_snapshots(changes)) == [s.snapshot for s in snapshots]
    for rows, iceberg_id in zip(snapshots, committed_snapshots(changes).values(), strict=True):
        appended = changes.snapshot_by_id(iceberg_id).summary.additional_properties.get("added-records", "0")
        expected = (
            rows.counts["rows_snapshot"]
            if rows.base is None
            else sum(rows.counts[k] for k in ("inserts", "updates", "deletes"))
        )
        assert int(appended) == expected


def test_a_retried_snapshot_commits_once(lake: IcebergLake, source: Source, tmp_path):
    # Given
    first, second = source.snapshot(V1), source.snapshot(V2)
    lake.commit_snapshot("items", first, tmp_path)
    lake.commit_snapshot("items", second, tmp_path)
    # When: the event of the second snapshot is delivered again
    outcomes = lake.commit_snapshot("items", second, tmp_path)
    # Then
    assert all(o.already and o.iceberg_snapshot_id is None for o in outcomes)
    table = lake.catalog.load_table(lake.identifier("items"))
    assert len(table.snapshots()) == 2
    assert sorted_rows(table.scan().to_arrow()) == sorted_rows(source.rows_of(second.snapshot))


def test_a_late_older_snapshot_never_commits_after_a_newer_one(lake: IcebergLake, source: Source, tmp_path):
    # Given: the table is at the second snapshot
    first, second = source.snapshot(V1), source.snapshot(V2)
    for rows in (first, second):
        lake.commit_snapshot("items", rows, tmp_path)
    late = SnapshotRows("20260105T070000Z", first.snapshot, second.state, second.changes, second.counts)
    # When / Then
    with pytest.raises(CommitOrderError, match="20260105T070000Z is older"):
        lake.commit_snapshot("items", late, tmp_path)
    table = lake.catalog.load_table(lake.identifier("items"))
    assert list(committed_snapshots(table)) == [first.snapshot, second.snapshot]


class RacingCatalog(GlueCatalog):
    """A Glue catalog whose first snapshot commit lets another writer commit first (the race)."""

    def __init__(self, other: Any, **kwargs: Any) -> None:
        super().__init__("racing", **kwargs)
        self.other, self.raced = other, False

    def commit_table(self, table: Any, requirements: Any, updates: Any) -> Any:
        if not self.raced and any(type(u).__name__ == "AddSnapshotUpdate" for u in updates):
            self.raced = True
            self.other()
        return super().commit_table(table, requirements, updates)


def _racing_lake(lake: IcebergLake, other: Any) -> IcebergLake:
    catalog = RacingCatalog(other, client=lake.catalog.glue, **lake.catalog.properties)
    return IcebergLake(catalog, lake.store, lake.database)


def test_a_writer_that_loses_the_race_to_the_same_snapshot_commits_nothing(lake: IcebergLake, source: Source, tmp_path):
    # Given: two deliveries of the second snapshot; the other one commits between our read and our commit
    first, second = source.snapshot(V1), source.snapshot(V2)
    lake.commit_snapshot("items", first, tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    racing = _racing_lake(lake, lambda: lake.commit_snapshot("items", second, other))
    # When
    outcomes = racing.commit_snapshot("items", second, tmp_path)
    # Then: Glue refused our stale commit; the retry read the ledger and found the snapshot there
    loser = outcomes[0]
    assert loser.already and loser.attempts == 2
    table = lake.catalog.load_table(lake.identifier("items_changes"))
    assert list(committed_snapshots(table)) == [first.snapshot, second.snapshot]
    # and the file our attempt wrote, listed by no metadata, was deleted
    data = [k for k in lake.store.list_keys("iceberg/items_changes/data/") if f"snapshot={second.snapshot}" in k]
    assert len(data) == 1


def test_a_conflicting_commit_of_something_else_is_retried_on_the_new_head(lake: IcebergLake, source: Source, tmp_path):
    # Given: a compaction rewrites the change stream's files between our read and our commit
    first, second = source.snapshot(V1), source.snapshot(V2)
    lake.commit_snapshot("items", first, tmp_path)

    def compaction() -> None:
        table = lake.catalog.load_table(lake.identifier("items_changes"))
        table.overwrite(table.scan().to_arrow())

    racing = _racing_lake(lake, compaction)
    # When
    outcome = racing.commit_snapshot("items", second, tmp_path)[0]
    # Then: Glue refused the stale commit; the retry committed on top of the compaction
    assert not outcome.already and outcome.attempts == 2
    table = lake.catalog.load_table(lake.identifier("items_changes"))
    named = [s.summary.additional_properties.get(SNAPSHOT) for s in table.snapshots()]
    assert named[0] == first.snapshot and named[-1] == second.snapshot and set(named[1:-1]) == {None}
    assert table.scan().to_arrow().num_rows == 3 + sum(second.counts[k] for k in ("inserts", "updates", "deletes"))


def test_two_concurrent_writers_of_one_snapshot_make_one_commit(lake: IcebergLake, source: Source, tmp_path, aws):
    # Given: the first snapshot committed; two writers (own clients, own work dirs) get the second
    first, second = source.snapshot(V1), source.snapshot(V2)
    lake.commit_snapshot("items", first, tmp_path)
    writers = [
        IcebergLake(glue_catalog(aws.client("glue"), s3_endpoint=aws.endpoint), lake.store, lake.database)
        for _ in range(2)
    ]
    start, results, errors = threading.Barrier(2), [], []

    def run(writer: IcebergLake, n: int) -> None:
        work = tmp_path / f"w{n}"
        work.mkdir()
        start.wait()
        try:
            results.append(writer.commit_snapshot("items", second, work))
        except Exception as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(w, n)) for n, w in enumerate(writers)]
    # When
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    # Then: each table has one commit of the snapshot, and the right rows
    assert not errors and len(results) == 2
    for name in ("items", "items_changes"):
        table = lake.catalog.load_table(lake.identifier(name))
        named = [s.summary[SNAPSHOT] for s in table.snapshots()]
        assert named == [first.snapshot, second.snapshot]
    current = lake.catalog.load_table(lake.identifier("items")).scan().to_arrow()
    assert sorted_rows(current) == sorted_rows(source.rows_of(second.snapshot))


class CrashingCatalog(GlueCatalog):
    """A Glue catalog whose process dies at its first snapshot commit (after the data files are written)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("crashing", **kwargs)
        self.crashed = False

    def commit_table(self, table: Any, requirements: Any, updates: Any) -> Any:
        if not self.crashed and any(type(u).__name__ == "AddSnapshotUpdate" for u in updates):
            self.crashed = True
            raise SystemExit("the Lambda's process ends here")
        return super().commit_table(table, requirements, updates)


def test_a_crash_between_writing_data_and_committing_leaves_no_visible_change(
    lake: IcebergLake, source: Source, tmp_path
):
    # Given: the first snapshot committed; the run of the second dies at its commit
    first, second = source.snapshot(V1), source.snapshot(V2)
    lake.commit_snapshot("items", first, tmp_path)
    crashing = IcebergLake(
        CrashingCatalog(client=lake.catalog.glue, **lake.catalog.properties), lake.store, lake.database
    )
    with pytest.raises(SystemExit):
        crashing.commit_snapshot("items", second, tmp_path)
    # Then: the data file is in the bucket, but no reader sees it
    changes = lake.catalog.load_table(lake.identifier("items_changes"))
    assert list(committed_snapshots(changes)) == [first.snapshot]
    orphans = [k for k in lake.store.list_keys("iceberg/items_changes/data/") if f"snapshot={second.snapshot}" in k]
    assert len(orphans) == 1
    assert changes.scan().to_arrow().num_rows == 3
    # When: the event is retried
    lake.commit_snapshot("items", second, tmp_path)
    # Then: the retry completes it, with its own file (the orphan is never overwritten)
    for name in ("items", "items_changes"):
        table = lake.catalog.load_table(lake.identifier(name))
        assert list(committed_snapshots(table)) == [first.snapshot, second.snapshot]
    listed = {
        task.file.file_path for task in lake.catalog.load_table(lake.identifier("items_changes")).scan().plan_files()
    }
    assert f"s3://{lake.store.bucket}/{orphans[0]}" not in listed
    assert lake.store.exists(orphans[0])
    current = lake.catalog.load_table(lake.identifier("items")).scan().to_arrow()
    assert sorted_rows(current) == sorted_rows(source.rows_of(second.snapshot))
