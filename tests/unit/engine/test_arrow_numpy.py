"""numpy views of Arrow columns: the fixed-width items the key check compares byte for byte."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st
from snapcdc.engine import arrow_numpy


@given(st.lists(st.text(alphabet="ab", min_size=3, max_size=3), min_size=1, max_size=30))
def test_text_of_one_width_has_equal_items_exactly_where_values_are_equal(values: list[str]) -> None:
    # Given text values all three characters long, in one slice of a larger array
    column = pa.array(["padding", *values]).slice(1)
    # When viewed as items
    items = arrow_numpy.items(column)
    # Then items compare as the values do
    assert items is not None
    for i, left in enumerate(values):
        assert [items[i] == items[j] for j in range(len(values))] == [left == right for right in values]


@given(st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), min_size=1, max_size=30))
def test_integers_have_equal_items_exactly_where_values_are_equal(values: list[int]) -> None:
    # Given integers
    items = arrow_numpy.items(pa.array([0, *values], type=pa.int64()).slice(1))
    # Then items compare as the values do
    assert items is not None
    for i, left in enumerate(values):
        assert [items[i] == items[j] for j in range(len(values))] == [left == right for right in values]


def test_columns_without_a_byte_for_byte_equality_have_no_items() -> None:
    # Given columns whose equal values may differ in bytes, or whose values cannot be lined up
    columns = {
        "mixed widths": pa.array(["ab", "abc"]),
        "a null": pa.array(["ab", None]),
        "floats (-0.0 == 0.0)": pa.array([0.0, -0.0]),
        "two chunks": pa.chunked_array([["ab"], ["cd"]]),
        "empty text only": pa.array(["", ""]),
    }
    # Then none is viewed as items
    assert {name: arrow_numpy.items(column) for name, column in columns.items()} == dict.fromkeys(columns)


def test_items_are_views_of_the_values() -> None:
    # Given a text column of one width
    column = pa.array(["k1", "k2", "k1"])
    # When viewed as items
    items = arrow_numpy.items(column)
    # Then they are the values' bytes
    assert items is not None
    assert items.tobytes() == b"k1k2k1"
    assert np.array_equal(items.take([2]).view(np.uint8), items[:1].view(np.uint8))


@given(
    st.datetimes(min_value=datetime(1900, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.none() | st.timezones()),
    st.sampled_from([pa.timestamp("us", tz="UTC"), pa.timestamp("us"), pa.timestamp("ns", tz="UTC")]),
)
def test_a_timestamp_scalar_is_the_one_pyarrow_makes(value: datetime, kind: pa.DataType) -> None:
    # Given a datetime (naive or with any zone) and a timestamp type
    # When made a scalar without pyarrow's conversion of Python objects
    made = arrow_numpy.scalar(value, kind)
    # Then it is the scalar pyarrow's own conversion gives (a naive datetime taken as UTC)
    assert made.type == kind
    assert made == pa.scalar(value, kind)


@given(st.lists(st.text(), max_size=20))
def test_texts_are_the_array_pyarrow_makes(values: list[str]) -> None:
    # Given Python strings (any code points, empty ones too)
    # When made an Arrow array
    made = arrow_numpy.texts(values)
    made.validate(full=True)
    # Then it holds them, as pyarrow's own conversion does
    assert made.equals(pa.array(values, type=pa.string()))


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("insert", pa.string()),
        (False, pa.bool_()),
        (7, pa.int64()),
        (datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC), pa.timestamp("us", tz="UTC")),
    ],
)
def test_a_repeated_value_is_that_value_count_times(value: bool | int | str | datetime, kind: pa.DataType) -> None:
    # Given a value and its type
    # When repeated
    made = arrow_numpy.repeated(value, kind, 3)
    # Then the array holds it three times, typed
    assert made.type == kind
    assert made.to_pylist() == [value] * 3
