"""The streamed file path: typed batches from pyarrow's reader, and the exact text path it falls back to.

The file path must give exactly what the in-memory (exact) path gives, whether the fast typed read
holds to the end or stops part-way through a file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from snapcdc.engine import (
    CDC_OPERATION,
    CDC_TIMESTAMP,
    SOURCE_RECORD,
    InputError,
    TableSpec,
    csv_input,
    data_only,
    diff_files,
    diff_tables,
    differ,
    hashing,
    new_side,
    sinks,
)
from snapcdc.engine.spec import HASH_COLUMNS

from tests.unit.engine.diff_model import csv_table

OBSERVED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def small_batches(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stream in 64 KB blocks and ~2,000-row batches, one hashed ahead: small files span many batches."""
    monkeypatch.setattr(csv_input, "STREAM_BLOCK_SIZE", 64 << 10)
    monkeypatch.setattr(new_side, "STREAM_BATCH_ROWS", 2_000)
    monkeypatch.setattr(differ, "HASHED_AHEAD", 1)


def _data(path: Path) -> pa.Table:
    table = pq.read_table(path)
    return table.drop_columns([c for c in HASH_COLUMNS if c in table.column_names]).replace_schema_metadata(None)


def _big_csv(path: Path, rows: int, late_value: tuple[int, str] | None = None) -> Path:
    """id,qty,at,flag,note: several stream batches' worth of rows; optionally one odd qty value."""
    with path.open("w") as out:
        out.write("id,qty,at,flag,note\n")
        for i in range(rows):
            qty = late_value[1] if late_value and i == late_value[0] else str(i % 97)
            at = f"2025-07-16 09:{i % 60:02d}:45.831"
            out.write(f"k{i:07d},{qty},{at},{'true' if i % 3 else 'False'},n{i % 5}\n")
    return path


def test_fast_typed_read_agrees_with_the_exact_parse_on_edge_values(tmp_path: Path) -> None:
    # Given values at the edges of each type: leading zeros, signs, exponents, fractions, bool spellings
    text = (
        "id,i,f,d,t,b,s\n"
        "1,007,1e5,2025-01-31,2025-07-16 09:36:45.831,tRuE,x\n"
        "2,-5,-0.5,2024-02-29,2025-07-16T09:36:45,0,\n"
        '3,,.5,,2025-07-16 09:36,FALSE,"a,b"\n'
        '4,123456789012345678,3,2025-12-01,2025-07-16,1,"q""uote"\n'
    )
    path = tmp_path / "edge.csv"
    path.write_text(text)
    spec = TableSpec(primary_key=("id",))
    # When loaded through the streamed file path and through the exact in-memory path
    streamed = diff_files(old=None, new=path, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "out")
    exact = diff_tables(None, csv_table(text.encode()), spec, OBSERVED)
    # Then the types and every value are the same
    assert streamed.schema == exact.schema
    assert _data(streamed.snapshot_path).equals(data_only(exact.snapshot))
    # And a column with a value an integer would not keep whole (007) stays text, its values as written
    assert [f.type for f in exact.schema] == [
        pa.string(), pa.string(), pa.float64(), pa.date32(), pa.timestamp("us"), pa.bool_(), pa.string()
    ]  # fmt: skip
    assert data_only(exact.snapshot)["i"].to_pylist() == ["007", "-5", None, "123456789012345678"]


def test_a_value_that_no_longer_fits_late_in_a_big_file_widens_the_column(tmp_path: Path) -> None:
    # Given an int column established by a first load, and a new file whose 19,000th row holds "12a":
    # the fast typed read has diffed and written several batches before it meets that value
    spec = TableSpec(primary_key=("id",), date_field="at")
    old = _big_csv(tmp_path / "old.csv", 20_000)
    first = diff_files(old=None, new=old, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "1")
    new = _big_csv(tmp_path / "new.csv", 20_000, late_value=(19_000, "12a"))
    # When diffed against the stored snapshot
    second = diff_files(old=first.snapshot_path, new=new, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "2")
    # Then the column is widened to text (recorded), no value is lost, and only that row changed
    assert second.schema.field("qty").type == pa.string()
    assert second.schema_changes == [{"column": "qty", "change": "widened", "from": "int64", "to": "string"}]
    changes = pq.read_table(second.changes_path)
    assert changes.select(["id", "qty", CDC_OPERATION]).to_pylist() == [
        {"id": "k0019000", "qty": "12a", CDC_OPERATION: "U"}
    ]
    snapshot = _data(second.snapshot_path)
    assert snapshot.num_rows == 20_000 and snapshot["qty"].null_count == 0
    assert snapshot.filter(pa.compute.equal(snapshot["id"], "k0000097"))["qty"].to_pylist() == ["0"]


def test_the_streamed_path_gives_the_in_memory_result_on_a_multi_batch_file(tmp_path: Path) -> None:
    # Given two snapshots larger than one stream batch, with changes spread through the file
    spec = TableSpec(primary_key=("id",), date_field="at")
    old_csv = _big_csv(tmp_path / "old.csv", 12_000)
    new_text = old_csv.read_text().replace(",n3\n", ",n3-changed\n").replace("k0000042,", "z0000042,")
    new_csv = tmp_path / "new.csv"
    new_csv.write_text(new_text)
    # When diffed as files (streamed, cached snapshot as the old side) and as tables in memory
    first = diff_files(old=None, new=old_csv, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "1")
    streamed = diff_files(old=first.snapshot_path, new=new_csv, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "2")
    in_memory = diff_tables(
        diff_tables(None, csv_table(old_csv.read_bytes()), spec, OBSERVED).snapshot,
        csv_table(new_text.encode()),
        spec,
        OBSERVED,
    )
    # Then the counts and the change set are identical
    assert streamed.stats == in_memory.stats
    assert (streamed.stats.updates, streamed.stats.inserts, streamed.stats.deletes) == (2_400, 1, 1)
    assert pq.read_table(streamed.changes_path).equals(in_memory.changes)


def test_deleted_rows_come_back_whole_from_a_snapshot_storing_text_as_a_dictionary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a cached snapshot of several row groups whose repetitive text column is dictionary-encoded
    monkeypatch.setattr(sinks, "SNAPSHOT_ROW_GROUP", 2_000)
    _deleted_rows_come_back_whole(tmp_path, row_groups_at_least=2)


def _deleted_rows_come_back_whole(tmp_path: Path, row_groups_at_least: int) -> None:
    """The body of the test above: the row groups are the snapshot writer's, which the Spark run replaces."""
    spec = TableSpec(primary_key=("id",), date_field="at")
    old_csv = _big_csv(tmp_path / "old.csv", 12_000)
    first = diff_files(old=None, new=old_csv, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "1")
    stored = pq.ParquetFile(first.snapshot_path).metadata
    note = stored.schema.names.index("note")
    assert stored.num_row_groups >= row_groups_at_least
    assert stored.row_group(0).column(note).has_dictionary_page
    # When every seventh row is deleted
    kept = [line for i, line in enumerate(old_csv.read_text().splitlines(keepends=True)) if i == 0 or i % 7]
    new_csv = tmp_path / "new.csv"
    new_csv.write_text("".join(kept))
    result = diff_files(old=first.snapshot_path, new=new_csv, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "2")
    # Then each delete event is its old row, every column as stored
    deleted = pq.read_table(result.changes_path).drop_columns([CDC_OPERATION, CDC_TIMESTAMP])
    old_rows = _data(first.snapshot_path)
    expected = old_rows.take(pa.array([i - 1 for i in range(1, 12_001) if i % 7 == 0]))
    assert result.stats.deletes == expected.num_rows == 1_714
    assert deleted.sort_by("id").equals(expected.sort_by("id"))


def test_a_first_load_reports_every_row_inserted_without_keeping_them_in_memory(tmp_path: Path) -> None:
    # Given a file of several stream batches
    spec = TableSpec(primary_key=("id",))
    # When loaded first
    outcome = diff_files(
        old=None, new=_big_csv(tmp_path / "t.csv", 10_000), spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "o"
    )
    # Then the change set (written beside the snapshot) holds every row as an insert
    changes = pq.read_table(outcome.changes_path)
    assert outcome.stats.inserts == changes.num_rows == 10_000
    assert set(changes[CDC_OPERATION].to_pylist()) == {"I"}
    assert changes.drop_columns([CDC_OPERATION, CDC_TIMESTAMP]).equals(pq.read_table(outcome.full_load_path))


def test_a_first_load_with_a_duplicate_found_late_rewrites_the_snapshot_full_load_and_change_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a first file where k0000005 appears again 15,000 rows later, and small row groups and CSV
    # segments, so that its first row is already written to all three files when the second is met
    monkeypatch.setattr(sinks, "SNAPSHOT_ROW_GROUP", 2_000)
    monkeypatch.setattr(csv_input, "SEGMENT_BYTES", 50_000)
    lines = _big_csv(tmp_path / "t.csv", 20_000).read_text().splitlines(keepends=True)
    lines[15_001] = lines[6].replace(",n0", ",other")  # line 6 holds k0000005
    new = tmp_path / "new.csv"
    new.write_text("".join(lines))
    # When loaded first
    outcome = diff_files(
        old=None, new=new, spec=TableSpec(primary_key=("id",)), observed_at=OBSERVED, out_dir=tmp_path / "o"
    )
    # Then both rows are quarantined and none of the three files holds k0000005
    assert pq.read_table(outcome.quarantine_path)[SOURCE_RECORD].to_pylist() == [7, 15_002]
    assert outcome.full_load_path is not None
    full_load, changes = pq.read_table(outcome.full_load_path), pq.read_table(outcome.changes_path)
    assert full_load.num_rows == changes.num_rows == outcome.stats.inserts == 19_998
    assert "k0000005" not in full_load["id"].to_pylist()
    # And the change set is the full load inserted, and the snapshot holds the same rows
    assert changes.drop_columns([CDC_OPERATION, CDC_TIMESTAMP]).equals(full_load)
    assert set(changes[CDC_OPERATION].to_pylist()) == {"I"}
    assert _data(outcome.snapshot_path).equals(full_load)


def test_duplicates_in_different_batches_are_quarantined_and_the_streamed_snapshot_rewritten(tmp_path: Path) -> None:
    # Given a stored snapshot, and a new file where key k0000005 appears again 15,000 rows later (another
    # batch, already written to the snapshot when the duplicate is met) and a new key appears twice
    spec = TableSpec(primary_key=("id",), date_field="at")
    first = diff_files(
        old=None, new=_big_csv(tmp_path / "old.csv", 20_000), spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "1"
    )
    lines = (tmp_path / "old.csv").read_text().splitlines(keepends=True)
    lines[15_001] = lines[6].replace(",n0", ",other")  # line 6 holds k0000005
    lines[9_000] = "new-key,1,2025-07-16 09:00:00,true,a\n"
    lines[18_000] = "new-key,2,2025-07-16 09:00:00,true,b\n"
    new = tmp_path / "new.csv"
    new.write_text("".join(lines))
    # When diffed
    outcome = diff_files(old=first.snapshot_path, new=new, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "2")
    # Then the four rows are quarantined with their record numbers, their keys produce no event, the old
    # k0000005 is carried forward and the rows they replaced are deletes
    quarantine = pq.read_table(outcome.quarantine_path)
    assert sorted(zip(quarantine["id"].to_pylist(), quarantine[SOURCE_RECORD].to_pylist(), strict=True)) == [
        ("k0000005", 7), ("k0000005", 15_002), ("new-key", 9_001), ("new-key", 18_001)
    ]  # fmt: skip
    changes = pq.read_table(outcome.changes_path)
    assert sorted(changes["id"].to_pylist()) == ["k0008999", "k0015000", "k0017999"]
    assert set(changes[CDC_OPERATION].to_pylist()) == {"D"}
    snapshot = _data(outcome.snapshot_path)
    assert snapshot.num_rows == outcome.stats.rows_snapshot == 20_000 - 3
    assert snapshot.filter(pa.compute.equal(snapshot["id"], "k0000005"))["note"].to_pylist() == ["n0"]


@pytest.mark.parametrize("first_load", [True, False], ids=["first-load", "later-snapshot"])
def test_without_the_snapshot_kept_the_change_set_is_the_same_and_only_it_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first_load: bool
) -> None:
    # Given small row groups, an old snapshot (or none), and a new file with changed, added and missing
    # rows and a key that appears again 15,000 rows later (found once its first row is written)
    monkeypatch.setattr(sinks, "SNAPSHOT_ROW_GROUP", 2_000)
    spec = TableSpec(primary_key=("id",), date_field="at")
    old = None
    if not first_load:
        old = diff_files(
            old=None,
            new=_big_csv(tmp_path / "old.csv", 20_000),
            spec=spec,
            observed_at=OBSERVED,
            out_dir=tmp_path / "1",
        ).snapshot_path
    lines = _big_csv(tmp_path / "base.csv", 20_000).read_text().splitlines(keepends=True)
    lines[15_001] = lines[6].replace(",n0", ",other")  # line 6 holds k0000005
    lines[9_000] = "new-key,1,2025-07-16 09:00:00,true,a\n"
    lines[12_000] = lines[12_000].replace(",n", ",changed-n")
    new = tmp_path / "new.csv"
    new.write_text("".join(lines))
    # When diffed keeping the snapshot, and as `snapcdc diff` does without --snapshot-out
    kept = diff_files(old=old, new=new, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "kept")
    alone = diff_files(
        old=old, new=new, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "alone", keep_snapshot=False
    )
    # Then the change set, the quarantine and the counts are the same
    assert pq.read_table(alone.changes_path).equals(pq.read_table(kept.changes_path))
    assert kept.quarantine_path is not None and alone.quarantine_path is not None
    assert pq.read_table(alone.quarantine_path).equals(pq.read_table(kept.quarantine_path))
    assert alone.stats == kept.stats
    assert kept.stats.quarantined == 2 and (kept.stats.inserts > 0) and (first_load or kept.stats.updates > 0)
    # And only they are written: no snapshot, no full load
    assert alone.snapshot_path is None and alone.full_load_path is None
    assert sorted(p.name for p in (tmp_path / "alone").iterdir()) == ["changes.parquet", "quarantine.parquet"]
    assert set(alone.files) == {"changes", "quarantine"}


def test_a_nul_byte_late_in_a_text_column_is_refused_naming_its_line_and_nothing_is_written(tmp_path: Path) -> None:
    # Given a stored snapshot and a new file with a NUL byte in a text value on line 15,001, where the
    # fast read would take it as text
    spec = TableSpec(primary_key=("id",), date_field="at")
    first = diff_files(
        old=None, new=_big_csv(tmp_path / "old.csv", 20_000), spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "1"
    )
    lines = (tmp_path / "old.csv").read_text().splitlines(keepends=True)
    lines[15_000] = lines[15_000].replace(",n", ",n\x00")
    new = tmp_path / "new.csv"
    new.write_text("".join(lines))
    # When diffed
    with pytest.raises(InputError) as refused:
        diff_files(old=first.snapshot_path, new=new, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "2")
    # Then the error names the file and line, and the output folder holds nothing
    assert str(refused.value) == f"{new}: line 15001: NUL byte in data"
    assert list((tmp_path / "2").iterdir()) == []


@pytest.mark.parametrize("failing", ["snapshot.parquet", "changes.parquet"])
def test_a_file_failing_while_the_snapshot_completes_beside_the_change_set_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failing: str
) -> None:
    # Given a stored snapshot, a new file with changes, and a disk that fills up as one output closes
    spec = TableSpec(primary_key=("id",), date_field="at")
    first = diff_files(
        old=None, new=_big_csv(tmp_path / "old.csv", 20_000), spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "1"
    )
    lines = (tmp_path / "old.csv").read_text().splitlines(keepends=True)
    new = tmp_path / "new.csv"
    new.write_text("".join(lines[:15_000] + [line.replace(",n", ",m") for line in lines[15_000:]]))
    close = pq.ParquetWriter.close

    def full_disk(writer: pq.ParquetWriter) -> None:
        close(writer)
        if isinstance(writer.where, str | Path) and Path(writer.where).name == failing:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(pq.ParquetWriter, "close", full_disk)
    # When diffed
    with pytest.raises(OSError, match="No space left on device"):
        diff_files(old=first.snapshot_path, new=new, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "2")
    # Then the error is the one reported and the output folder holds nothing
    assert list((tmp_path / "2").iterdir()) == []


def test_columns_that_do_not_compress_are_stored_plain_and_the_rest_compressed(tmp_path: Path) -> None:
    # Given random ids (no codec shrinks them) beside a counter (LZ4 halves it)
    import random
    import uuid

    rows, chance = 20_000, random.Random(7)
    path = tmp_path / "new.csv"
    with path.open("w") as out:
        out.write("id,status,n\n")
        for i in range(rows):
            out.write(f"{uuid.UUID(int=chance.getrandbits(128))},{chance.choice('abc')},{i}\n")
    # When it becomes a snapshot, its first load's change set, and a change set of a later run
    first = diff_files(
        old=None, new=path, spec=TableSpec(primary_key=("id",)), observed_at=OBSERVED, out_dir=tmp_path / "first"
    )
    second = diff_files(
        old=first.snapshot_path,
        new=path,
        spec=TableSpec(primary_key=("id",), allow_mass_delete=True),
        observed_at=OBSERVED,
        out_dir=tmp_path / "second",
    )

    # Then the id column is written plain in each, the counter compressed, the hashes plain
    def codecs(parquet_path: Path) -> dict[str, str]:
        group = pq.ParquetFile(parquet_path).metadata.row_group(0)
        return {group.column(i).path_in_schema: group.column(i).compression for i in range(group.num_columns)}

    snapshot = codecs(first.snapshot_path)
    assert snapshot["id"] == "UNCOMPRESSED"
    assert snapshot["n"] == "LZ4"
    assert snapshot["_key_hash"] == snapshot["_row_hash"] == "UNCOMPRESSED"
    for written in (first.changes_path, first.full_load_path, second.snapshot_path):
        assert written is not None
        assert codecs(written)["id"] == "UNCOMPRESSED"
        assert codecs(written)["n"] != "UNCOMPRESSED"
    # And the data reads back whole
    assert _data(first.snapshot_path).num_rows == rows == pq.read_table(first.changes_path).num_rows


def test_the_snapshot_has_statistics_on_key_and_date_and_user_files_on_every_data_column(tmp_path: Path) -> None:
    # Given ids, a repetitive status, a counter and a date
    import random
    import uuid

    chance = random.Random(11)
    path = tmp_path / "new.csv"
    with path.open("w") as out:
        out.write("id,status,n,updated\n")
        for i in range(5_000):
            out.write(f"{uuid.UUID(int=chance.getrandbits(128))},{chance.choice('abc')},{i},2024-01-{1 + i % 28:02d}\n")
    spec = TableSpec(primary_key=("id",), date_field="updated")
    # When it becomes a first snapshot
    first = diff_files(old=None, new=path, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "first")

    def column_chunks(parquet_path: Path) -> dict[str, pq.ColumnChunkMetaData]:
        group = pq.ParquetFile(parquet_path).metadata.row_group(0)
        return {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}

    # Then the snapshot (the engine's state, looked up by key and date) has statistics on those only
    snapshot = column_chunks(first.snapshot_path)
    assert {name for name, chunk in snapshot.items() if chunk.is_stats_set} == {"id", "updated"}
    assert snapshot["id"].statistics.min < snapshot["id"].statistics.max
    # And the files users query have them on every data column
    for written in (first.changes_path, first.full_load_path):
        assert written is not None
        assert {name for name, chunk in column_chunks(written).items() if chunk.is_stats_set} == {
            "id",
            "status",
            "n",
            "updated",
            *(["_cdc_operation", "_cdc_timestamp"] if written == first.changes_path else []),
        }
    # And only the repetitive text is dictionary-encoded (random ids are not)
    assert snapshot["status"].dictionary_page_offset is not None
    assert snapshot["id"].dictionary_page_offset is None


@pytest.mark.parametrize("colliding_key_hash", [False, True], ids=["distinct-hashes", "every-key-hash-collides"])
def test_an_old_csv_with_duplicated_keys_diffs_as_its_accepted_snapshot_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, colliding_key_hash: bool
) -> None:
    # Given an old CSV whose keys k00005 and k04000 occur twice (in one batch and across batches)
    if colliding_key_hash:  # the worst case for a 64-bit key hash: only the real keys can tell rows apart
        monkeypatch.setattr(
            hashing, "key_hash", lambda table, columns, pool=None: np.zeros(table.num_rows, dtype=np.uint64)
        )
    rows = [f"k{i:05d},{i},2025-01-01 00:00:00" for i in range(6_000)]
    old_rows = [*rows[:6], "k00005,555,2025-01-02 00:00:00", *rows[6:], "k04000,444,2025-01-02 00:00:00"]
    old = tmp_path / "old.csv"
    old.write_text("id,qty,at\n" + "\n".join(old_rows) + "\n")
    # and a new CSV that keeps k00005 (changed), drops k04000 and k00001, updates k00002
    new_rows = [r for r in rows if not r.startswith(("k04000", "k00001"))]
    new_rows[new_rows.index(rows[2])] = "k00002,22,2025-01-03 00:00:00"
    new_rows[new_rows.index(rows[5])] = "k00005,50,2025-01-03 00:00:00"
    new = tmp_path / "new.csv"
    new.write_text("id,qty,at\n" + "\n".join(new_rows) + "\n")
    spec = TableSpec(primary_key=("id",), date_field="at")
    # When diffed against the old CSV directly, and against the snapshot the old CSV is accepted as
    direct = diff_files(old=old, new=new, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "direct")
    accepted = diff_files(old=None, new=old, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "accepted")
    stored = diff_files(
        old=accepted.snapshot_path, new=new, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "stored"
    )
    # Then the duplicated keys are not part of the old side: k00005 is an insert, k04000 no delete
    changes = pq.read_table(direct.changes_path)
    assert sorted(zip(changes["id"].to_pylist(), changes[CDC_OPERATION].to_pylist(), strict=True)) == [
        ("k00001", "D"),
        ("k00002", "U"),
        ("k00005", "I"),
    ]
    assert direct.stats.rows_old == 6_000 - 2 == accepted.stats.rows_snapshot
    # And both routes give the same change set, counts and snapshot
    assert direct.stats == stored.stats
    assert changes.equals(pq.read_table(stored.changes_path))
    assert _data(direct.snapshot_path).equals(_data(stored.snapshot_path))


@pytest.mark.parametrize(
    "new_text",
    ["id,at\na,2024-01-01\nc,2024-01-05\nd,2024-01-03\n", "id,at,x\na,2024-01-01,1\nc,2024-01-05,2\nd,2024-01-03,3\n"],
    ids=["same-columns", "a-column-added-the-old-rows-are-read-whole"],
)
def test_an_old_csv_of_nothing_but_key_and_date_gives_its_deleted_rows_back(tmp_path: Path, new_text: str) -> None:
    # Given an old CSV whose columns are all held in memory for the diff (none go to its scratch file)
    old = tmp_path / "old.csv"
    old.write_text("id,at\na,2024-01-01\nb,2024-01-02\nc,2024-01-03\n")
    new = tmp_path / "new.csv"
    new.write_text(new_text)
    spec = TableSpec(primary_key=("id",), date_field="at")
    # When diffed
    outcome = diff_files(old=old, new=new, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "out")
    # Then the deleted row comes back whole, beside the insert and the update(s)
    changes = pq.read_table(outcome.changes_path).drop_columns(["_cdc_timestamp"])
    deleted = [row for row in changes.to_pylist() if row[CDC_OPERATION] == "D"]
    assert deleted == [
        {"id": "b", "at": datetime(2024, 1, 2).date(), **({"x": None} if ",x" in new_text else {}), CDC_OPERATION: "D"}
    ]
    assert sorted(changes["id"].to_pylist()) == (["a", "b", "c", "d"] if ",x" in new_text else ["b", "c", "d"])


@pytest.mark.parametrize(
    "new_text",
    ["id,qty\nk1,5\nk2,7\n", "id,qty,note\nk1,5,\nk2,7,\n"],
    ids=["same-columns", "a-column-added-the-old-hashes-are-recomputed"],
)
def test_an_old_csv_key_shared_with_a_row_quarantined_for_its_value_is_a_duplicate(
    tmp_path: Path, new_text: str
) -> None:
    # Given an old CSV where k1 is on a row whose qty does not fit the configured int64, and on a good row
    old = tmp_path / "old.csv"
    old.write_text("id,qty\nk1,abc\nk1,5\nk2,7\nk3,8\n")
    new = tmp_path / "new.csv"
    # and a new CSV that drops k3, stored after the rows set aside (its old row is read back by position)
    new.write_text(new_text)
    spec = TableSpec(primary_key=("id",), column_types={"qty": "int64"})
    # When diffed against the old CSV directly, and against the snapshot it is accepted as
    direct = diff_files(old=old, new=new, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "direct")
    accepted = diff_files(old=None, new=old, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "accepted")
    stored = diff_files(
        old=accepted.snapshot_path, new=new, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "stored"
    )
    # Then k1 was a duplicate in the old side (both rows left out), so it is inserted now, both ways,
    # and k3 is deleted with its own old values
    for outcome in (direct, stored):
        changes = pq.read_table(outcome.changes_path).select(["id", "qty", CDC_OPERATION]).to_pylist()
        assert changes == [
            {"id": "k1", "qty": 5, CDC_OPERATION: "I"},
            {"id": "k3", "qty": 8, CDC_OPERATION: "D"},
        ]
        assert outcome.stats.rows_old == 2


def _late_odd_qty(tmp_path: Path, odd: bytes) -> Path:
    """A file whose qty column holds numbers until row 9,000 (well past the sample that types it)."""
    path = _big_csv(tmp_path / "t.csv", 12_000, late_value=(9_000, "@"))
    path.write_bytes(path.read_bytes().replace(b",@,", b"," + odd + b","))
    return path


def test_invalid_utf8_late_in_a_number_column_is_an_input_error_naming_its_line(tmp_path: Path) -> None:
    """Number columns are read as bytes (no UTF-8 check) and converted: a value that is not a number
    sends the file to the exact path, which checks the text and names the line."""
    # Given a number column with an invalid UTF-8 byte at row 9,000
    path = _late_odd_qty(tmp_path, b"1\xff")
    # When loaded
    with pytest.raises(InputError) as error:
        diff_files(old=None, new=path, spec=TableSpec(primary_key=("id",)), observed_at=OBSERVED, out_dir=tmp_path)
    # Then the error names the line (header + 9,000 rows before it) and the byte ("k0009000,1" is 10)
    assert (error.value.line, error.value.problem) == (9_002, "invalid UTF-8 (byte 11 of the line)")


def test_a_late_non_ascii_letter_in_a_number_column_keeps_the_column_as_text(tmp_path: Path) -> None:
    # Given a number column with "é" at row 9,000
    path = _late_odd_qty(tmp_path, "é".encode())
    # When loaded
    outcome = diff_files(
        old=None, new=path, spec=TableSpec(primary_key=("id",)), observed_at=OBSERVED, out_dir=tmp_path / "o"
    )
    # Then the column is kept as text, the odd value whole
    snapshot = pq.read_table(outcome.snapshot_path)
    assert snapshot.schema.field("qty").type == pa.string()
    assert snapshot["qty"][9_000].as_py() == "é" and snapshot["qty"][8_999].as_py() == str(8_999 % 97)
