"""Snapshot retention: the rule of what expiry may remove (a property test), the config's
``iceberg.retention_days`` reaching existing tables, and an expiry that leaves verify and the current
state intact (moto's Glue and S3)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from snapcdc.cdc.iceberg.commit import committed_snapshots
from snapcdc.cdc.iceberg.maintenance import (
    DAY_SECONDS,
    DEFAULT_RETENTION_DAYS,
    Retention,
    expirable,
    expire_snapshots,
    retention_properties,
)
from snapcdc.cdc.iceberg.sync import IcebergLake
from snapcdc.cdc.stage import TableProcessor
from snapcdc.config import PipelineConfig
from snapcdc.lake.snapshot import Snapshot
from snapcdc.ops.verify import verify_table

from tests.iceberg.conftest import Source, sorted_rows
from tests.iceberg.test_stage import COLUMNS, S1, S2, S3, TABLE, V1, V2, V3
from tests.support import csv_bytes, put_raw

NOW = datetime(2026, 6, 1, tzinfo=UTC)
NOW_MS = int(NOW.timestamp() * 1000)
DAY_MS = DAY_SECONDS * 1000


@st.composite
def histories(draw: st.DrawFn) -> tuple[dict[int, int], list[int], set[int]]:
    """Iceberg snapshots (id -> commit time, ms, up to 20 years back), the current state's history
    newest first, and the heads of branches and tags."""
    ages = draw(st.lists(st.integers(0, 20 * 365 * DAY_MS), min_size=1, max_size=30))
    committed = {100 + i: NOW_MS - age for i, age in enumerate(sorted(ages, reverse=True))}
    newest_first = sorted(committed, key=lambda s: committed[s], reverse=True)
    protected = draw(st.sets(st.sampled_from(sorted(committed)), max_size=3))
    return committed, newest_first, protected | {newest_first[0]}


retentions = st.builds(Retention, days=st.integers(1, 5000), min_snapshots=st.integers(1, 5))


@given(histories(), retentions)
def test_expiry_never_removes_a_kept_or_a_young_snapshot(history, retention: Retention) -> None:
    # Given a table's snapshots and a retention
    committed, newest_first, protected = history
    # When the rule says what expires now
    expired = expirable(committed, newest_first, protected, retention, NOW)
    # Then never the newest min_snapshots, a branch's or tag's head, or one younger than the retention
    assert not expired & set(newest_first[: retention.min_snapshots])
    assert not expired & protected
    assert all(NOW_MS - committed[s] > retention.days * DAY_MS for s in expired)
    # and every older one that is not kept does expire
    kept = set(newest_first[: retention.min_snapshots]) | protected
    assert {s for s in committed if NOW_MS - committed[s] > retention.days * DAY_MS} - kept == expired


@given(histories(), retentions, st.integers(0, 3000), st.integers(0, 3000))
def test_a_longer_retention_or_an_earlier_time_expires_no_more(history, retention: Retention, more: int, later: int):
    # Given a table's snapshots
    committed, newest_first, protected = history
    # When the retention is longer, or the expiry runs later
    base = expirable(committed, newest_first, protected, retention, NOW)
    longer = expirable(committed, newest_first, protected, replace(retention, days=retention.days + more), NOW)
    afterwards = expirable(committed, newest_first, protected, retention, NOW + timedelta(days=later))
    # Then a longer retention expires a subset, a later run a superset
    assert longer <= base <= afterwards


def test_the_default_keeps_ten_years_of_source_snapshots() -> None:
    # Given snapshots committed every day for ten years, and one more from before that
    committed = {i: NOW_MS - i * DAY_MS for i in range(DEFAULT_RETENTION_DAYS + 2)}
    # When the default retention is applied
    expired = expirable(committed, sorted(committed), {0}, Retention(), NOW)
    # Then only the snapshot older than 3650 days expires
    assert expired == {DEFAULT_RETENTION_DAYS + 1}
    assert PipelineConfig.model_validate({"dataset": "o/s", "tables": [TABLE.model_dump()]}).iceberg.retention_days == (
        DEFAULT_RETENTION_DAYS
    )


def test_a_changed_retention_reaches_the_existing_tables_on_their_next_commit(lake: IcebergLake, source: Source):
    # Given tables created with the default retention
    first, second = source.snapshot({"id": ["1"], "v": ["a"]}), source.snapshot({"id": ["1"], "v": ["b"]})
    lake.commit_snapshot("items", first, source.work)
    properties = lake.catalog.load_table(lake.identifier("items")).properties
    assert {k: properties[k] for k in retention_properties(Retention())} == retention_properties(Retention())
    # When the config's retention becomes 30 days and the next snapshot is committed
    shorter = replace(lake, retention=Retention(days=30))
    shorter.commit_snapshot("items", second, source.work)
    # Then both tables carry the 30 days (in the properties the Glue optimizer and VACUUM read)
    for name in ("items", "items_changes"):
        properties = lake.catalog.load_table(lake.identifier(name)).properties
        assert properties["history.expire.max-snapshot-age-ms"] == str(30 * DAY_MS)
        assert properties["vacuum_max_snapshot_age_seconds"] == str(30 * DAY_SECONDS)


def test_an_expiry_keeps_the_current_state_and_verify_passes(lake: IcebergLake, tmp_path: Path) -> None:
    # Given three snapshots committed by the stage
    for snap, rows in ((S1, V1), (S2, V2), (S3, V3)):
        put_raw(lake.store, TABLE, snap, csv_bytes(COLUMNS, rows))
    TableProcessor(lake.store, TABLE, work_dir=tmp_path / "work", iceberg=lake).process(Snapshot.parse(S3))
    # When expiry runs now with the default retention, then two days later with a one-day retention
    tables = [lake.catalog.load_table(lake.identifier(name)) for name in ("clientes", "clientes_changes")]
    assert [expire_snapshots(t, Retention()) for t in tables] == [[], []]
    later = datetime.now(UTC) + timedelta(days=2)
    expired = [expire_snapshots(t, Retention(days=1), now=later) for t in tables]
    # Then the older commits are gone, the newest is kept and still reads as the newest snapshot
    assert [len(e) for e in expired] == [2, 2]
    for name in ("clientes", "clientes_changes"):
        assert list(committed_snapshots(lake.catalog.load_table(lake.identifier(name)))) == [S3]
    state = lake.catalog.load_table(lake.identifier("clientes")).scan().to_arrow()
    assert [(r["idcliente"], r["qtdepontos"]) for r in sorted_rows(state, key="idcliente")] == [
        ("a", 11),
        ("b", 25),
        ("d", 40),
    ]
    # And verify accepts a ledger whose oldest commits expired
    result = verify_table(lake.store, TABLE, lake)
    assert result.ok, result.line()
