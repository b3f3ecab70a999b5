"""Property tests: replaying the change set on the old snapshot gives the new accepted snapshot.

A naive Python model (tests/unit/engine/diff_model.py) is the oracle for the snapshot, the events and
the counts. Columns have configured types here so the model need not re-implement type inference
(example tests in test_diff.py and test_schema.py cover inference and widening).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snapcdc.engine import TableSpec, data_only, diff_tables

from tests.unit.engine.diff_model import Row, assert_diff_matches_model, rows_by_key, text_table

OBSERVED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
COLUMNS = ("k1", "k2", "name", "amount", "note")
SPEC = TableSpec(
    primary_key=("k1", "k2"),
    column_types={"k1": "string", "k2": "string", "name": "string", "amount": "int64", "note": "string"},
    max_delete_ratio=1.0,
)
# Separators, quotes, line breaks, unicode: everything a CSV writer must quote or a naive key
# concatenation would confuse ("a"+"bc" vs "ab"+"c").
TRICKY = st.sampled_from(["a", "ab", "bc", "c", "x,y", 'q"t', "l\nb", "crlf\r\nx", "é", "😀", " sp ", "a|b", ";"])
KEY_PART = st.one_of(TRICKY, st.text(alphabet="abc", min_size=1, max_size=2))
VALUE = st.one_of(st.none(), TRICKY, st.text(max_size=5).filter(lambda s: "\x00" not in s and s != ""))
AMOUNT = st.one_of(st.none(), st.integers(-(10**12), 10**12))


def _row(k1: str | None, k2: str | None, name: str | None, amount: int | None, note: str | None) -> Row:
    return {"k1": k1, "k2": k2, "name": name, "amount": amount, "note": note}


ROW = st.builds(_row, st.one_of(KEY_PART, st.none()), KEY_PART, VALUE, AMOUNT, VALUE)


@st.composite
def snapshot_pairs(draw: st.DrawFn) -> tuple[list[Row], list[Row]]:
    """An old snapshot and a new one derived from it: kept, changed, deleted, inserted rows."""
    old = draw(st.lists(ROW, max_size=12))
    new: list[Row] = []
    for row in old:
        fate = draw(st.sampled_from(["keep", "keep", "change", "delete", "twice"]))
        if fate == "keep":
            new.append(dict(row))
        elif fate == "change":
            column = draw(st.sampled_from(["name", "amount", "note"]))
            new.append({**row, column: draw(AMOUNT if column == "amount" else VALUE)})
        elif fate == "twice":
            new.extend([dict(row), {**row, "note": draw(VALUE)}])
    new.extend(draw(st.lists(ROW, max_size=6)))
    order = draw(st.permutations(range(len(new))))
    return old, [new[i] for i in order]


def _typed(rows: list[Row]) -> list[Row]:
    """Rows as the engine types them: amount is int64, text stays text."""
    return [{**r, "amount": r["amount"]} for r in rows]


def _as_text(rows: list[Row]) -> list[Row]:
    return [{**r, "amount": None if r["amount"] is None else str(r["amount"])} for r in rows]


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshot_pairs())
def test_replaying_changes_on_old_gives_new_snapshot(pair: tuple[list[Row], list[Row]]) -> None:
    # Given an old snapshot accepted as a first load, and a new snapshot derived from it
    old_rows, new_rows = pair
    first = diff_tables(None, text_table(_as_text(old_rows), COLUMNS), SPEC, OBSERVED)
    old_state = rows_by_key(data_only(first.snapshot), SPEC.primary_key)
    # When the new snapshot is diffed against the accepted old one
    result = diff_tables(first.snapshot, text_table(_as_text(new_rows), COLUMNS), SPEC, OBSERVED)
    # Then events, counts and the snapshot match the model, and replay gives the snapshot
    assert_diff_matches_model(old_state, _typed(new_rows), result, SPEC.primary_key)


@pytest.mark.slow
@settings(max_examples=20000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(snapshot_pairs())
def test_replaying_changes_on_old_gives_new_snapshot_long_run(pair: tuple[list[Row], list[Row]]) -> None:
    test_replaying_changes_on_old_gives_new_snapshot.hypothesis.inner_test(pair)  # type: ignore[attr-defined]


@settings(max_examples=250, deadline=None)
@given(snapshot_pairs(), st.data())
def test_every_row_changed_or_tables_emptied(pair: tuple[list[Row], list[Row]], data: st.DataObject) -> None:
    # Given an old snapshot and a new one where every row changed, or that is empty
    old_rows, _ = pair
    mode = data.draw(st.sampled_from(["all_changed", "empty_new"]))
    new_rows = [] if mode == "empty_new" else [{**r, "note": f"changed {r['note']}"} for r in old_rows]
    first = diff_tables(None, text_table(_as_text(old_rows), COLUMNS), SPEC, OBSERVED)
    old_state = rows_by_key(data_only(first.snapshot), SPEC.primary_key)
    # When diffed
    result = diff_tables(first.snapshot, text_table(_as_text(new_rows), COLUMNS), SPEC, OBSERVED)
    # Then the model holds (every accepted old row is updated, or deleted)
    assert_diff_matches_model(old_state, _typed(new_rows), result, SPEC.primary_key)
