"""Type parsing, inference and widening (snapcdc.engine.schema)."""

from __future__ import annotations

from datetime import date, datetime

import pyarrow as pa
import pytest
from snapcdc.engine.schema import infer, parse, widen


def _text(*values: str | None) -> pa.ChunkedArray:
    return pa.chunked_array([pa.array(list(values), type=pa.string())])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (("1", "-2", None), "int64"),
        (("1", "2.5", "1e3"), "float64"),
        (("2025-01-01", None), "date"),
        (("2025-07-16 09:36:45.831", "2025-07-16"), "timestamp"),
        (("true", "False"), "bool"),
        (("1", "x"), "string"),
        ((None, None), "string"),
        (("2025-07-16T09:36:45Z",), "string"),
    ],
)
def test_inference_picks_the_narrowest_type_every_value_fits(values: tuple[str | None, ...], expected: str) -> None:
    # Given a text column / When inferred / Then the narrowest fitting type
    assert infer(_text(*values)) == expected


def test_parse_flags_values_that_do_not_fit_and_keeps_nulls() -> None:
    # Given ints with a misfit and an empty value
    parsed = parse(_text("1", "x", None), "int64")
    # Then the misfit is flagged, the empty one is simply null
    assert parsed.values.to_pylist() == [1, None, None]
    assert parsed.bad is not None and parsed.bad.tolist() == [False, True, False]


def test_impossible_dates_do_not_fit() -> None:
    # Given a date-shaped value that is not a date
    parsed = parse(_text("2025-02-30", "2025-02-28"), "date")
    # Then it is flagged, the valid one parsed
    assert parsed.values.to_pylist() == [None, date(2025, 2, 28)]
    assert parsed.bad is not None and parsed.bad.tolist() == [True, False]


def test_timestamp_parse_accepts_dataset_and_iso_formats() -> None:
    parsed = parse(_text("2025-07-16 09:36:45.831", "2025-07-16T09:36", "2025-07-16"), "timestamp")
    assert parsed.bad is None
    assert parsed.values.to_pylist()[0] == datetime(2025, 7, 16, 9, 36, 45, 831000)


def test_widening_int_goes_to_string_never_to_float() -> None:
    assert widen(_text("1", "2"), "int64")[0] == "int64"
    assert widen(_text("1", "2.5"), "int64")[0] == "string"
    assert widen(_text("1", "abc"), "int64")[0] == "string"
    assert widen(_text("2025-01-01", "later"), "date")[0] == "string"
    assert widen(_text("true", "maybe"), "bool")[0] == "string"


def test_widening_to_string_keeps_the_source_text() -> None:
    name, parsed = widen(_text("007", "abc", None), "int64")
    assert name == "string"
    assert parsed.values.to_pylist() == ["007", "abc", None]
