from datetime import UTC, datetime

import pyarrow as pa
from snapcdc.ops.verify import apply_changes, table_differences

OBSERVED = pa.scalar(datetime(2026, 1, 5, 9, tzinfo=UTC), pa.timestamp("us", tz="UTC"))


def _changes(rows, ops):
    table = pa.Table.from_pylist(rows)
    table = table.append_column("_cdc_operation", pa.array(ops))
    return table.append_column("_cdc_timestamp", pa.array([OBSERVED] * len(ops), OBSERVED.type))


def test_apply_upserts_inserts_and_updates_and_removes_deletes():
    # Given
    old = pa.Table.from_pylist(
        [{"a": "x", "b": "1", "v": 1}, {"a": "x", "b": "2", "v": 2}, {"a": "y", "b": "1", "v": None}]
    )
    changes = _changes(
        [{"a": "x", "b": "2", "v": 2}, {"a": "y", "b": "1", "v": 5}, {"a": "z", "b": "9", "v": 9}], ["D", "U", "I"]
    )
    # When
    new = apply_changes(old, changes, ["a", "b"])
    # Then
    expected = pa.Table.from_pylist(
        [{"a": "x", "b": "1", "v": 1}, {"a": "y", "b": "1", "v": 5}, {"a": "z", "b": "9", "v": 9}]
    )
    assert table_differences(new, expected, ["a", "b"]) is None


def test_apply_appends_a_column_that_only_the_changes_have():
    # Given
    old = pa.Table.from_pylist([{"k": "1", "v": 1}])
    changes = _changes([{"k": "1", "v": 1, "extra": "novo"}], ["U"])
    # When
    new = apply_changes(old, changes, ["k"])
    # Then
    assert new.to_pylist() == [{"k": "1", "v": 1, "extra": "novo"}]


def test_differences_name_the_column_and_key_and_treat_nulls_as_equal():
    expected = pa.Table.from_pylist([{"k": "1", "v": None}, {"k": "2", "v": 2}])
    assert table_differences(expected, expected, ["k"]) is None
    actual = pa.Table.from_pylist([{"k": "2", "v": 3}, {"k": "1", "v": None}])
    assert table_differences(actual, expected, ["k"]) == "column v differs at key {'k': '2'}: 3 != 2"
    assert table_differences(actual.slice(0, 1), expected, ["k"]) == "row count 1 != expected 2"
