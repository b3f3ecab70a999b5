"""The change feeds read by real consumers: delta-rs applies the changelog to a Delta table, DuckDB
queries the SCD2 history as of each snapshot time, a reader written against the DMS S3 target's
documented layout reads the DMS files; property tests for the SCD2 invariants.

The feeds are built here as the CDC stage builds them (engine -> snapcdc.cdc.feeds), on local files."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snapcdc.cdc import feeds
from snapcdc.engine import TableSpec, diff_files
from snapcdc.ops.verify import data_columns, table_differences

deltalake = pytest.importorskip("deltalake")

SPEC = TableSpec(
    primary_key=("id",),
    column_types={"id": "string", "amount": "int64", "note": "string"},
    max_delete_ratio=1.0,
    with_preimages=True,
)
SCHEMA = pa.schema([("id", pa.string()), ("amount", pa.string()), ("note", pa.string())])
START = datetime(2026, 1, 5, 9, tzinfo=UTC)


def _table(rows: dict[str, tuple[int, str | None]]) -> pa.Table:
    return pa.table(
        {"id": list(rows), "amount": [str(v[0]) for v in rows.values()], "note": [v[1] for v in rows.values()]},
        schema=SCHEMA,
    )


def build(versions: list[dict[str, tuple[int, str | None]]], work: Path, tracked=None):
    """Runs the snapshots through the engine and builds every feed; returns (snapshots, changelog
    files, dms files in write order, scd2 files)."""
    snapshots, changelog, dms, scd2 = [], [], [], []
    old = current = None
    for number, rows in enumerate(versions, start=1):
        at = START + timedelta(hours=4 * (number - 1))
        snap = at.strftime("%Y%m%dT%H%M%SZ")
        step = work / str(number)
        step.mkdir()
        new = step / "new.csv"
        pacsv.write_csv(_table(rows), new)
        outcome = diff_files(old=old, new=new, spec=SPEC, observed_at=at, out_dir=step / "out")
        snapshots.append((at, data_columns(pq.read_table(outcome.snapshot_path))))
        if old is None:
            changelog.append(
                feeds.stream_rows(
                    outcome.full_load_path,
                    step / "changelog.parquet",
                    lambda r, at=at: feeds.changelog_inserts(r, 1, at),
                )
            )
            dms.append(
                feeds.stream_rows(
                    outcome.full_load_path, step / "LOAD00000001.parquet", lambda r, at=at: feeds.dms_rows(r, "I", at)
                )
            )
            current = feeds.scd2_first(outcome.full_load_path, step / "current.parquet", snap, at)
        else:
            changes = pq.read_table(outcome.changes_path)
            pre = pq.read_table(outcome.preimages_path)
            changelog.append(
                feeds.write_feed(feeds.changelog_rows(changes, pre, number, at), step / "changelog.parquet")
            )
            dms.append(feeds.write_feed(feeds.dms_changes(changes, at), step / f"{at:%Y%m%d-%H%M%S}000.parquet"))
            target = step / "current.parquet"
            closed = feeds.scd2_step(current, changes, outcome.schema, ("id",), tracked, snap, at, target)
            current = target
            if closed.num_rows:
                scd2.append(feeds.write_feed(closed, step / "closed.parquet"))
        old = outcome.snapshot_path
    return snapshots, changelog, dms, [*scd2, current]


V = [
    {"a": (1, "x"), "b": (2, None), "c": (3, "z")},
    {"a": (10, "x"), "b": (2, None), "d": (4, "w")},
    {"a": (10, "y"), "b": (2, "n"), "c": (30, "z"), "d": (4, "w")},
    {"b": (2, "n"), "c": (30, "z")},
]


def test_delta_rs_applying_the_changelog_ends_equal_to_the_newest_snapshot(tmp_path):
    snapshots, changelog, _, _ = build(V, tmp_path)
    path = str(tmp_path / "delta")
    for file in changelog:
        rows = pq.read_table(file)
        # The consumer's merge, as a Delta CDF reader applies a changelog: drop the pre-images,
        # delete on "delete", upsert the rest.
        rows = rows.filter(pc.not_equal(rows[feeds.CHANGE_TYPE], feeds.PREIMAGE))
        if not (tmp_path / "delta").exists():
            deltalake.write_deltalake(path, data_columns(rows.filter(pc.equal(rows[feeds.CHANGE_TYPE], feeds.INSERT))))
            continue
        source = rows.select(["id", "amount", "note", feeds.CHANGE_TYPE]).rename_columns(
            ["id", "amount", "note", "change"]
        )
        (
            deltalake.DeltaTable(path)
            .merge(source, predicate="t.id = s.id", source_alias="s", target_alias="t")
            .when_matched_delete(predicate="s.change = 'delete'")
            .when_matched_update(
                updates={"amount": "s.amount", "note": "s.note"}, predicate="s.change = 'update_postimage'"
            )
            .when_not_matched_insert(
                updates={"id": "s.id", "amount": "s.amount", "note": "s.note"}, predicate="s.change <> 'delete'"
            )
            .execute()
        )
    delta = pa.table(deltalake.DeltaTable(path).to_pyarrow_table())
    assert table_differences(delta.select(["id", "amount", "note"]), snapshots[-1][1], ["id"]) is None
    versions = [pq.read_table(f)[feeds.COMMIT_VERSION].unique().to_pylist() for f in changelog]
    assert versions == [[1], [2], [3], [4]]


def _as_of_duckdb(files: list[Path], at: datetime) -> pa.Table:
    sql = f"""
        SELECT id, amount, note FROM read_parquet({[str(f) for f in files]!r}, union_by_name = true)
        WHERE valid_from <= $at AND (valid_to IS NULL OR valid_to > $at)
    """
    return duckdb.execute(sql, {"at": at}).to_arrow_table()


def test_the_scd2_history_queried_as_of_each_snapshot_time_equals_that_snapshot(tmp_path):
    snapshots, _, _, scd2 = build(V, tmp_path)
    for at, snapshot in snapshots:
        assert table_differences(_as_of_duckdb(scd2, at), snapshot, ["id"]) is None, at
        between = at + timedelta(hours=2)  # any time until the next snapshot: the same state
        assert table_differences(_as_of_duckdb(scd2, between), snapshot, ["id"]) is None


def read_dms_s3_target(folder: Path, primary_key: list[str]) -> pa.Table:
    """A reader written against the DMS S3 target's documented layout: full-load files LOADnnnnnnnn
    (hexadecimal counter, in order), then CDC files named by time (in name order); in every file the
    first column is the operation (I/U/D) when IncludeOpForFullLoad is on."""
    loads = sorted(p for p in folder.iterdir() if p.name.startswith("LOAD"))
    changes = sorted(p for p in folder.iterdir() if not p.name.startswith("LOAD"))
    state: dict[tuple, dict] = {}
    for path in [*loads, *changes]:
        table = pq.read_table(path)
        op_column = table.column_names[0]
        for row in table.to_pylist():
            key = tuple(row[k] for k in primary_key)
            op = row.pop(op_column)
            row.pop("dms_timestamp")
            if op == "D":
                state.pop(key, None)
            else:
                state[key] = row
    return pa.Table.from_pylist(list(state.values()))


def test_a_reader_of_the_dms_layout_reads_the_newest_snapshot(tmp_path):
    snapshots, _, dms, _ = build(V, tmp_path)
    folder = tmp_path / "dms"
    folder.mkdir()
    for file in dms:
        (folder / file.name).write_bytes(file.read_bytes())
    assert [p.name for p in sorted(folder.iterdir())][-1] == "LOAD00000001.parquet"
    state = read_dms_s3_target(folder, ["id"])
    assert table_differences(state, snapshots[-1][1], ["id"]) is None
    stamps = pq.read_table(folder / "LOAD00000001.parquet")["dms_timestamp"].unique().to_pylist()
    assert stamps == ["2026-01-05 09:00:00.000000"]


STATES = st.lists(
    st.dictionaries(st.sampled_from("abcdef"), st.tuples(st.integers(0, 2), st.sampled_from(["x", "y", None]))),
    min_size=1,
    max_size=6,
)


def _invariants(snapshots, files, tracked):
    history = pa.concat_tables([pq.read_table(f).replace_schema_metadata(None) for f in files])
    rows = history.to_pylist()
    by_key: dict[str, list[dict]] = {}
    for row in rows:
        by_key.setdefault(row["id"], []).append(row)
    times = [at for at, _ in snapshots]
    for key, versions in by_key.items():
        versions.sort(key=lambda r: r["valid_from"])
        # never overlapping, each closed after it opens, only the last may be current
        for earlier, later in itertools.pairwise(versions):
            assert earlier["valid_to"] is not None and earlier["valid_to"] <= later["valid_from"]
        assert all(v["valid_to"] is None or v["valid_from"] < v["valid_to"] for v in versions)
        assert all(v["is_current"] == (v["valid_to"] is None) for v in versions)
        # no gap while the key exists: a version ends only where the key is deleted or a new one starts
        for earlier, later in itertools.pairwise(versions):
            if earlier["valid_to"] != later["valid_from"]:
                index = times.index(earlier["valid_to"])
                assert all(
                    key not in {r["id"] for r in s.to_pylist()}
                    for _, s in snapshots[index : times.index(later["valid_from"])]
                )
    columns = ["id", *(tracked or ["amount", "note"])]
    for at, snapshot in snapshots:
        valid = feeds.as_of(history, at)
        assert table_differences(valid.select(columns), snapshot.select(columns), ["id"]) is None
    current = history.filter(history["is_current"]).select(["id", "amount", "note"])
    assert table_differences(current, snapshots[-1][1], ["id"]) is None


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(states=STATES)
def test_scd2_invariants_hold_for_any_sequence_of_snapshots(states, tmp_path_factory):
    work = tmp_path_factory.mktemp("scd2")
    snapshots, _, _, files = build(states, work)
    _invariants(snapshots, files, None)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture]
)
@given(states=STATES)
def test_scd2_with_tracked_columns_versions_only_on_their_changes(states, tmp_path_factory):
    work = tmp_path_factory.mktemp("scd2t")
    snapshots, _, _, files = build(states, work, tracked=["note"])
    _invariants(snapshots, files, ["note"])
    history = pa.concat_tables([pq.read_table(f).replace_schema_metadata(None) for f in files])
    for key in set(history["id"].to_pylist()):
        versions = sorted((r for r in history.to_pylist() if r["id"] == key), key=lambda r: r["valid_from"])
        for earlier, later in itertools.pairwise(versions):
            if earlier["valid_to"] == later["valid_from"]:  # no delete between them: a tracked change
                assert earlier["note"] != later["note"]


def test_with_preimages_off_the_engine_writes_none(tmp_path):
    new = tmp_path / "n.csv"
    pacsv.write_csv(_table(V[0]), new)
    first = diff_files(
        old=None, new=new, spec=replace(SPEC, with_preimages=False), observed_at=START, out_dir=tmp_path / "o"
    )
    assert first.preimages_path is None
