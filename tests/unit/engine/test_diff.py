"""Example tests of the CDC engine: one named test per rule of docs/design.md, section "CDC semantics"."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from snapcdc.config import TableConfig
from snapcdc.engine import (
    CDC_OPERATION,
    CDC_TIMESTAMP,
    KEY_HASH,
    QUARANTINE_REASON,
    ROW_HASH,
    SOURCE_RECORD,
    DeleteGuardError,
    DiffResult,
    InputError,
    TableSpec,
    data_only,
    diff_files,
    diff_tables,
    hashing,
)
from snapcdc.engine.spec import DUPLICATE_KEY, NULL_KEY

from tests.unit.engine.diff_model import csv_table, replay, rows_by_key, text_table

OBSERVED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SPEC = TableSpec(primary_key=("id",), date_field="updated")
KEY_ONLY = TableSpec(primary_key=("id",))  # for tables without the date column


def _csv(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def _ops(result: DiffResult) -> dict[str, str]:
    return {str(r["id"]): r[CDC_OPERATION] for r in result.changes.to_pylist()}


def _first(text: str, spec: TableSpec = SPEC) -> DiffResult:
    return diff_tables(None, _table(text), spec, OBSERVED)


def _table(text: str) -> pa.Table:
    return csv_table(text.encode("utf-8"))


OLD = (
    "id,name,amount,updated\n"
    "1,ana,10,2025-01-01 10:00:00\n"
    "2,bia,20,2025-01-01 10:00:00\n"
    "3,caio,30,2025-01-01 10:00:00\n"
)
# OLD with 4 inserted, 2 updated (its date unchanged) and 3 deleted.
ONE_OF_EACH = (
    "id,name,amount,updated\n"
    "1,ana,10,2025-01-01 10:00:00\n"
    "2,bia,25,2025-01-01 10:00:00\n"
    "4,davi,40,2025-02-01 09:00:00\n"
)


def test_insert_update_delete_detected_by_content() -> None:
    # Given an old snapshot and a new one with one insert, one update, one delete
    old = _first(OLD)
    new = ONE_OF_EACH
    # When diffed
    result = diff_tables(old.snapshot, _table(new), SPEC, OBSERVED)
    # Then each change is one event with the right operation; unchanged rows produce none
    assert _ops(result) == {"4": "I", "2": "U", "3": "D"}
    assert result.stats.updates_without_date_bump == 1


def test_delete_carries_the_old_values() -> None:
    # Given a row that disappears
    old = _first(OLD)
    # When diffed against a snapshot without it
    result = diff_tables(old.snapshot, _table(OLD.replace("3,caio,30,2025-01-01 10:00:00\n", "")), SPEC, OBSERVED)
    # Then the D event holds the old row's values
    (deleted,) = result.changes.to_pylist()
    assert deleted["name"] == "caio"
    assert deleted["amount"] == 30
    assert deleted[CDC_OPERATION] == "D"


def test_null_changes_are_updates_both_ways_and_null_equals_null() -> None:
    # Given values going value->null, null->value, and null staying null
    old = _first("id,a,b,c\n1,x,,\n2,,y,\n", KEY_ONLY)
    # When diffed
    result = diff_tables(old.snapshot, _table("id,a,b,c\n1,,,\n2,z,y,\n"), TableSpec(("id",)), OBSERVED)
    # Then both changes are updates; the null==null column changes nothing
    assert _ops(result) == {"1": "U", "2": "U"}
    assert result.stats.updates == 2


def test_cdc_timestamp_is_observed_at_in_utc() -> None:
    # Given a first load
    result = _first(OLD)
    # Then every event carries observed_at as a UTC timestamp
    assert result.changes.schema.field(CDC_TIMESTAMP).type == pa.timestamp("us", tz="UTC")
    assert set(result.changes[CDC_TIMESTAMP].to_pylist()) == {OBSERVED}
    assert result.changes.schema.field(CDC_OPERATION).type == pa.string()


def test_composite_keys_do_not_collide_when_concatenated() -> None:
    # Given composite keys that are equal once concatenated: ("a","bc") and ("ab","c")
    spec = TableSpec(primary_key=("k1", "k2"), max_delete_ratio=1.0)
    old = diff_tables(None, text_table([{"k1": "a", "k2": "bc", "v": "1"}], ["k1", "k2", "v"]), spec, OBSERVED)
    new = text_table([{"k1": "ab", "k2": "c", "v": "1"}], ["k1", "k2", "v"])
    # When diffed
    result = diff_tables(old.snapshot, new, spec, OBSERVED)
    # Then they are different rows: one delete, one insert
    assert sorted(r[CDC_OPERATION] for r in result.changes.to_pylist()) == ["D", "I"]


def test_keys_may_contain_any_separator_character() -> None:
    # Given keys with delimiters, quotes, line breaks and control characters
    keys = ["a,b", 'q"t', "l\nb", "x|y", "\t", "\x01", "é😀"]
    spec = TableSpec(primary_key=("id",))
    old = diff_tables(None, text_table([{"id": k, "v": "1"} for k in keys], ["id", "v"]), spec, OBSERVED)
    # When one of them changes
    new = text_table([{"id": k, "v": "2" if k == "l\nb" else "1"} for k in keys], ["id", "v"])
    result = diff_tables(old.snapshot, new, spec, OBSERVED)
    # Then exactly that key is updated
    assert [(r["id"], r[CDC_OPERATION]) for r in result.changes.to_pylist()] == [("l\nb", "U")]


def test_key_hash_collision_falls_back_to_exact_join(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a key hash that collides for every key (the worst case a 64-bit hash could hit)
    monkeypatch.setattr(
        hashing, "key_hash", lambda table, columns, pool=None: np.zeros(table.num_rows, dtype=np.uint64)
    )
    old = _first(OLD)
    new = ONE_OF_EACH
    # When diffed
    result = diff_tables(old.snapshot, _table(new), SPEC, OBSERVED)
    # Then real key values decide: same events as without collisions, and no false duplicates
    assert _ops(result) == {"4": "I", "2": "U", "3": "D"}
    assert result.stats.quarantined == 0


@pytest.mark.parametrize(
    ("new_key", "old_key"),
    [("4", "3"), ("k4", "k3"), ("key-4", "k3"), ("k4", "key-3")],
    ids=["numbers", "text of one width", "text, new wider", "text, old wider"],
)
def test_a_new_key_sharing_an_old_keys_hash_is_not_paired_with_it(
    monkeypatch: pytest.MonkeyPatch, new_key: str, old_key: str
) -> None:
    # Given a new key whose 64-bit hash is an old key's (the hash lookup finds the old row)
    real_key_hash = hashing.key_hash

    def colliding(table: pa.Table | pa.RecordBatch, columns: list[str], pool: object = None) -> np.ndarray:
        hashes = real_key_hash(table, columns)
        ids = [str(value) for value in table["id"].to_pylist()]
        if old_key in ids and new_key in ids:
            raise AssertionError("one table holds both keys")
        if new_key in ids:
            hashes[ids.index(new_key)] = _hash_of(real_key_hash, old_key, table["id"].type)
        return hashes

    monkeypatch.setattr(hashing, "key_hash", colliding)
    old = _first(OLD.replace("3,caio", f"{old_key},caio").replace("1,ana", "11,ana").replace("2,bia", "12,bia"))
    new = ONE_OF_EACH.replace("4,davi", f"{new_key},davi").replace("1,ana", "11,ana").replace("2,bia", "12,bia")
    # When diffed
    result = diff_tables(old.snapshot, _table(new), SPEC, OBSERVED)
    # Then the real key values decide: the new key is an insert, the old one a delete, nothing is an update
    assert _ops(result) == {new_key: "I", "12": "U", old_key: "D"}
    assert result.stats.quarantined == 0


def _hash_of(key_hash: Callable[[pa.Table, list[str]], np.ndarray], key: str, kind: pa.DataType) -> np.uint64:
    value = int(key) if pa.types.is_integer(kind) else key
    hashed: np.uint64 = key_hash(pa.table({"id": pa.array([value], type=kind)}), ["id"])[0]
    return hashed


def test_long_strings_hash_by_content() -> None:
    # Given values longer than one hashing piece, differing only at the end or by piece order
    base = "x" * 200
    values = [base, base[:-1] + "y", "a" * 64 + "b" * 64, "b" * 64 + "a" * 64, base]
    # When hashed
    lane_a, lane_b = hashing.column_lanes(pa.chunked_array([pa.array(values)]))
    # Then equal strings hash equal and different ones differ, whatever the position of the change
    assert lane_a[0] == lane_a[4] and lane_b[0] == lane_b[4]
    assert len({(a, b) for a, b in zip(lane_a[:4], lane_b[:4], strict=True)}) == 4


def test_hash_of_a_value_does_not_depend_on_its_neighbours() -> None:
    # Given the same strings in a batch with a long value and in a batch of short ones (different widths)
    short = pa.array(["ab", "abcdefgh", "", None])
    mixed = pa.array(["ab", "abcdefgh", "", None, "z" * 500])
    # When hashed
    alone = hashing.column_lanes(pa.chunked_array([short]))
    together = hashing.column_lanes(pa.chunked_array([mixed]))
    # Then each value has one hash
    assert (alone[0] == together[0][:4]).all() and (alone[1] == together[1][:4]).all()


def test_null_and_empty_keys_are_quarantined() -> None:
    # Given rows with a missing key
    result = _first("id,name\n1,ana\n,bia\n,\n", KEY_ONLY)
    # Then they go to quarantine with a reason and their line, and produce no event
    assert result.quarantine is not None
    rows = result.quarantine.to_pylist()
    assert [(r["name"], r[QUARANTINE_REASON], r[SOURCE_RECORD]) for r in rows] == [
        ("bia", NULL_KEY, 3),
        (None, NULL_KEY, 4),
    ]
    assert result.stats.quarantined == 2
    assert result.stats.inserts == 1


def test_duplicate_keys_quarantine_all_rows_and_carry_old_row_forward() -> None:
    # Given a key that existed before and is now duplicated, and a new key that is duplicated
    old = _first(OLD)
    new = (
        "id,name,amount,updated\n1,ana,10,2025-01-01 10:00:00\n2,bia,99,2025-03-01 10:00:00\n"
        "2,bia2,98,2025-03-01 10:00:00\n3,caio,30,2025-01-01 10:00:00\n7,x,1,2025-01-01\n7,y,2,2025-01-01\n"
    )
    # When diffed
    result = diff_tables(old.snapshot, _table(new), SPEC, OBSERVED)
    # Then all four duplicate rows are quarantined, no event for keys 2 and 7, and key 2 keeps its old row
    assert result.quarantine is not None
    assert sorted(r["id"] for r in result.quarantine.to_pylist()) == ["2", "2", "7", "7"]
    assert {r[QUARANTINE_REASON] for r in result.quarantine.to_pylist()} == {DUPLICATE_KEY}
    assert result.changes.num_rows == 0
    snapshot = rows_by_key(data_only(result.snapshot), ("id",))
    assert snapshot[("2",)]["amount"] == 20
    assert ("7",) not in snapshot
    assert result.stats.carried_forward == 1
    assert replay(rows_by_key(data_only(old.snapshot), ("id",)), result.changes, ("id",)) == snapshot


def test_delete_guard_refuses_mass_delete(tmp_path: Path) -> None:
    # Given a new snapshot that deletes 2 of 3 rows
    old = _csv(tmp_path / "old.csv", OLD)
    new = _csv(tmp_path / "new.csv", "id,name,amount,updated\n1,ana,10,2025-01-01 10:00:00\n")
    out = tmp_path / "out"
    # When diffed with the default limit (50%)
    with pytest.raises(DeleteGuardError) as refused:
        diff_files(old=old, new=new, spec=SPEC, observed_at=OBSERVED, out_dir=out)
    # Then it is refused with the numbers, and nothing is written
    assert (refused.value.deletes, refused.value.rows_old, refused.value.max_ratio) == (2, 3, 0.5)
    assert "2 deletes of 3 rows" in str(refused.value)
    assert not out.exists() or not any(out.iterdir())


def test_delete_guard_allows_mass_delete_when_configured(tmp_path: Path) -> None:
    # Given the same mass delete with allow_mass_delete
    old = _csv(tmp_path / "old.csv", OLD)
    new = _csv(tmp_path / "new.csv", "id,name,amount,updated\n")
    spec = TableSpec(primary_key=("id",), allow_mass_delete=True)
    # When diffed
    outcome = diff_files(old=old, new=new, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "out")
    # Then every row is deleted
    assert outcome.stats.deletes == 3
    assert outcome.stats.rows_snapshot == 0


def test_date_only_update_and_update_without_date_bump_are_counted() -> None:
    # Given one row whose date advanced alone, one changed without a date bump, one changed with it
    old = _first(OLD)
    new = (
        "id,name,amount,updated\n1,ana,10,2025-02-01 10:00:00\n2,bia,21,2025-01-01 10:00:00\n"
        "3,caio,31,2025-02-01 10:00:00\n"
    )
    # When diffed
    result = diff_tables(old.snapshot, _table(new), SPEC, OBSERVED)
    # Then all three are updates, counted by kind
    assert result.stats.updates == 3
    assert result.stats.date_only_updates == 1
    assert result.stats.updates_without_date_bump == 1


def test_columns_in_different_order_are_not_changes() -> None:
    # Given the same data with its columns reordered
    old = _first(OLD)
    new = (
        "updated,amount,id,name\n"
        "2025-01-01 10:00:00,10,1,ana\n"
        "2025-01-01 10:00:00,20,2,bia\n"
        "2025-01-01 10:00:00,30,3,caio\n"
    )
    # When diffed
    result = diff_tables(old.snapshot, _table(new), SPEC, OBSERVED)
    # Then nothing changed and the stable column order is kept
    assert result.changes.num_rows == 0
    assert result.schema.names == ["id", "name", "amount", "updated"]


def test_added_column_is_appended_and_rows_with_a_value_become_updates() -> None:
    # Given a new column filled for one row only
    old = _first(OLD)
    new = (
        "id,extra,name,amount,updated\n"
        "1,,ana,10,2025-01-01 10:00:00\n"
        "2,7,bia,20,2025-01-01 10:00:00\n"
        "3,,caio,30,2025-01-01 10:00:00\n"
    )
    # When diffed
    result = diff_tables(old.snapshot, _table(new), SPEC, OBSERVED)
    # Then it is appended at the end, recorded, and only the row with a value is updated
    assert result.schema.names[-1] == "extra"
    assert result.schema_changes == [{"column": "extra", "change": "added", "type": "int64"}]
    assert _ops(result) == {"2": "U"}


def test_removed_column_is_kept_with_nulls_and_recorded() -> None:
    # Given a column that disappears from the file
    old = _first(OLD)
    new = "id,name,updated\n1,ana,2025-01-01 10:00:00\n2,bia,2025-01-01 10:00:00\n3,caio,2025-01-01 10:00:00\n"
    # When diffed
    result = diff_tables(old.snapshot, _table(new), SPEC, OBSERVED)
    # Then it stays in the schema with nulls, rows whose old value was set are updated
    assert result.schema.field("amount").type == pa.int64()
    assert data_only(result.snapshot)["amount"].null_count == 3
    assert {"column": "amount", "change": "removed", "type": "int64"} in result.schema_changes
    assert result.stats.updates == 3


def test_int_column_widened_to_string_not_nulled() -> None:
    # Given an int column that receives text
    old = _first(OLD)
    new = OLD.replace("2,bia,20,", "2,bia,n/a,")
    # When diffed
    result = diff_tables(old.snapshot, _table(new), SPEC, OBSERVED)
    # Then the column widens to string, keeps every value, and only the changed row is an update
    assert result.schema.field("amount").type == pa.string()
    assert result.schema_changes == [{"column": "amount", "change": "widened", "from": "int64", "to": "string"}]
    assert sorted(data_only(result.snapshot)["amount"].to_pylist()) == ["10", "30", "n/a"]
    assert _ops(result) == {"2": "U"}


def test_int_column_widened_to_string_when_values_are_decimals() -> None:
    # Given an int column that receives a decimal
    old = _first(OLD)
    # When diffed
    result = diff_tables(old.snapshot, _table(OLD.replace("2,bia,20,", "2,bia,20.5,")), SPEC, OBSERVED)
    # Then it becomes text (never a double for an integer: 2**53 + 1 would not survive), the old
    # integers compare equal as their text, and only the changed row is an update
    assert result.schema.field("amount").type == pa.string()
    assert sorted(data_only(result.snapshot)["amount"].to_pylist()) == ["10", "20.5", "30"]
    assert _ops(result) == {"2": "U"}


def test_timestamp_widened_to_string_keeps_unchanged_rows_unchanged() -> None:
    # Given a timestamp column that receives text
    old = _first(OLD)
    new = OLD.replace("3,caio,30,2025-01-01 10:00:00", "3,caio,30,soon")
    # When diffed
    result = diff_tables(old.snapshot, _table(new), SPEC, OBSERVED)
    # Then old timestamps are rendered as the source wrote them: only row 3 changed
    assert result.schema.field("updated").type == pa.string()
    assert _ops(result) == {"3": "U"}


def test_all_empty_column_does_not_flip_established_type() -> None:
    # Given an int column that is entirely empty in the new snapshot
    old = _first(OLD)
    new = "id,name,amount,updated\n1,ana,,2025-01-01 10:00:00\n"
    # When diffed
    result = diff_tables(old.snapshot, _table(new), TableSpec(("id",), max_delete_ratio=1.0), OBSERVED)
    # Then the type stays int64
    assert result.schema.field("amount").type == pa.int64()
    assert result.schema_changes == []


def test_all_empty_column_without_history_is_string() -> None:
    # Given a first snapshot with an empty column
    result = _first("id,empty\n1,\n2,\n", KEY_ONLY)
    # Then it is typed string
    assert result.schema.field("empty").type == pa.string()


def test_config_types_win_and_misfits_are_quarantined() -> None:
    # Given a configured int column with a value that is not an int, and a configured string id
    spec = TableSpec(primary_key=("id",), column_types={"id": "string", "qty": "int64"})
    # When loaded
    result = _first("id,qty\n001,5\n002,many\n", spec)
    # Then the id keeps its leading zeros, and the misfit row is quarantined with the column named
    assert result.schema.field("id").type == pa.string()
    assert data_only(result.snapshot).to_pylist() == [{"id": "001", "qty": 5}]
    assert result.quarantine is not None
    assert result.quarantine.to_pylist()[0][QUARANTINE_REASON] == "column qty: value does not fit configured type int64"


def test_timestamps_parse_with_milliseconds_as_naive_microseconds() -> None:
    # Given the dataset's timestamp format and ISO
    result = _first("id,at\n1,2025-07-16 09:36:45.831\n2,2025-07-16T09:36:45\n", KEY_ONLY)
    # Then the column is timestamp[us] without time zone
    assert result.schema.field("at").type == pa.timestamp("us")
    assert data_only(result.snapshot)["at"].to_pylist()[0] == datetime(2025, 7, 16, 9, 36, 45, 831000)


def test_empty_old_and_empty_new() -> None:
    # Given an empty old snapshot (header only)
    old = _first("id,name\n", KEY_ONLY)
    # When diffed against an empty new one, and against one row
    empty = diff_tables(old.snapshot, _table("id,name\n"), TableSpec(("id",)), OBSERVED)
    one = diff_tables(old.snapshot, _table("id,name\n1,a\n"), TableSpec(("id",)), OBSERVED)
    # Then nothing changes, then one insert
    assert empty.changes.num_rows == 0 and empty.stats.rows_old == 0
    assert _ops(one) == {"1": "I"}


def test_first_load_writes_full_load_and_snapshot_with_hashes(tmp_path: Path) -> None:
    # Given a CSV and no old snapshot
    new = _csv(tmp_path / "new.csv", OLD)
    # When diffed
    outcome = diff_files(old=None, new=new, spec=SPEC, observed_at=OBSERVED, out_dir=tmp_path / "out")
    # Then full load holds data columns only, the snapshot also the hashes, changes all inserts
    assert outcome.full_load_path is not None
    assert pq.read_schema(outcome.full_load_path).names == ["id", "name", "amount", "updated"]
    assert pq.read_schema(outcome.snapshot_path).names[-2:] == [KEY_HASH, ROW_HASH]
    assert set(pq.read_table(outcome.changes_path)[CDC_OPERATION].to_pylist()) == {"I"}
    assert outcome.quarantine_path is None


def test_cached_parquet_old_side_gives_same_result_as_csv_old_side(tmp_path: Path) -> None:
    # Given a first load written to disk
    old_csv = _csv(tmp_path / "old.csv", OLD)
    first = diff_files(old=None, new=old_csv, spec=SPEC, observed_at=OBSERVED, out_dir=tmp_path / "1")
    new = _csv(tmp_path / "new.csv", OLD.replace("2,bia,20", "2,bia,21") + "5,eva,50,2025-01-01\n")
    # When the new snapshot is diffed against the snapshot Parquet and against the CSV
    cached = diff_files(old=first.snapshot_path, new=new, spec=SPEC, observed_at=OBSERVED, out_dir=tmp_path / "2")
    direct = diff_files(old=old_csv, new=new, spec=SPEC, observed_at=OBSERVED, out_dir=tmp_path / "3")
    # Then both give the same change set
    assert cached.stats == direct.stats
    assert pq.read_table(cached.changes_path).equals(pq.read_table(direct.changes_path))


def test_input_error_leaves_nothing_in_out_dir(tmp_path: Path) -> None:
    # Given a malformed new file
    old = _csv(tmp_path / "old.csv", OLD)
    new = _csv(tmp_path / "new.csv", "id,name,amount,updated\n1,ana\n")
    out = tmp_path / "out"
    # When diffed
    with pytest.raises(InputError) as error:
        diff_files(old=old, new=new, spec=SPEC, observed_at=OBSERVED, out_dir=out, new_name="s3://b/raw/x.csv")
    # Then the error names the file as given and the line, and no output exists
    assert str(error.value) == "s3://b/raw/x.csv: line 2: expected 4 fields, found 2"
    assert not out.exists() or not any(out.iterdir())


def test_missing_primary_key_column_is_an_input_error() -> None:
    # Given a file without the key column
    # When loaded
    with pytest.raises(InputError, match="primary key column"):
        _first("name\nana\n")


def test_table_spec_from_config() -> None:
    # Given a table config
    config = TableConfig(
        name="t", file="t.csv", delimiter=";", primary_key=("a", "b"), date_field="d",
        column_types={"a": "int64"}, max_delete_ratio=0.2, allow_mass_delete=True,
    )  # fmt: skip
    # When turned into a spec
    spec = TableSpec.from_config(config)
    # Then every field carries over
    assert spec == TableSpec(("a", "b"), "d", {"a": "int64"}, ";", 0.2, True)
