"""Stable column types: parse text columns, infer a type for a new column, widen when values no longer fit.

Pure (pyarrow/numpy). Type names are the config's: string, int64, float64, bool, timestamp, date.
Timestamps are ``timestamp[us]`` without a time zone: the source data carries local wall-clock times
(``2025-07-16 09:36:45.831``), and a value with a zone offset does not fit (the column widens to
string rather than silently shifting times).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int64": pa.int64(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us"),
    "date": pa.date32(),
}
# Order in which a column with no history is tried: the first type every value fits wins.
INFERENCE_ORDER = ("int64", "float64", "date", "timestamp", "bool")
# Widening keeps every value: an int that no longer fits may still be a float; anything else is text.
WIDENING = {"int64": ("float64", "string"), "float64": ("string",)}

# 18 digits always fit int64; longer numbers are treated as not-an-int (they widen to float/string).
_PATTERNS = {
    "int64": r"^[+-]?[0-9]{1,18}$",
    "float64": r"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$",
    "date": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
    "timestamp": r"^[0-9]{4}-[0-9]{2}-[0-9]{2}([ T][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?)?$",
    "bool": r"^(?i:true|false|1|0)$",
}
_SAMPLE = 2000


def type_name(arrow_type: pa.DataType) -> str:
    """The config type name an Arrow type is stored as (anything unusual is kept as text)."""
    if pa.types.is_integer(arrow_type):
        return "int64"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "float64"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    if pa.types.is_date(arrow_type):
        return "date"
    return "string"


@dataclass
class ParsedColumn:
    values: pa.ChunkedArray  # typed; null where the text was empty or did not fit
    bad: np.ndarray | None  # bool per row: text present but not of the type (None: all fit)


def _as_chunked(values: pa.Array | pa.ChunkedArray) -> pa.ChunkedArray:
    return values if isinstance(values, pa.ChunkedArray) else pa.chunked_array([values], type=values.type)


def _to_text(values: pa.ChunkedArray) -> pa.ChunkedArray:
    if pa.types.is_string(values.type):
        return values
    text = pc.cast(values, pa.string())
    if pa.types.is_timestamp(values.type):
        # Arrow writes "09:36:45.831000"; the source wrote "09:36:45.831" (or no fraction at all).
        text = pc.replace_substring_regex(text, r"\.0+$", "")
        text = pc.replace_substring_regex(text, r"(\.[0-9]*[1-9])0+$", r"\1")
    return text


def _mask(values: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=bool)


def _python_parse(text: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """Slow path for strings that look like dates but are not (2025-02-30): None where invalid."""
    out: list[object] = []
    for value in text.to_pylist():
        try:
            if value is None:
                out.append(None)
            elif name == "date":
                out.append(date.fromisoformat(value))
            else:
                out.append(datetime.fromisoformat(value))
        except ValueError:
            out.append(None)
    return pa.chunked_array([pa.array(out, type=ARROW_TYPES[name])])


def parse(values: pa.Array | pa.ChunkedArray, name: str) -> ParsedColumn:
    """Convert a column to type ``name``; rows whose text does not fit are null and flagged in ``bad``."""
    column = _as_chunked(values)
    target = ARROW_TYPES[name]
    if column.type == target:
        return ParsedColumn(column, None)
    exact = type_name(column.type) == name or (name == "float64" and pa.types.is_integer(column.type))
    if exact and name != "string":
        return ParsedColumn(pc.cast(column, target), None)
    text = _to_text(column)
    if name == "string":
        return ParsedColumn(text, None)
    if len(text) == 0 or text.null_count == len(text):
        return ParsedColumn(pa.chunked_array([pa.nulls(len(text), target)]), None)
    if name != "bool":
        try:  # the common case, every value fits: one vectorized cast, no pattern matching
            return ParsedColumn(_as_chunked(pc.cast(text, target)), None)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    fits = pc.fill_null(pc.match_substring_regex(text, _PATTERNS[name]), True)
    clean = text if pc.all(fits).as_py() else pc.if_else(fits, text, pa.scalar(None, pa.string()))
    if name == "bool":
        typed = pc.equal(pc.utf8_lower(clean), "true")
        typed = pc.if_else(pc.equal(clean, "1"), True, typed)
    else:
        try:
            typed = pc.cast(clean, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            typed = _python_parse(clean, name)
    bad = pc.and_(pc.is_valid(text), pc.is_null(typed))
    bad_mask = _mask(bad)
    return ParsedColumn(_as_chunked(typed), bad_mask if bad_mask.any() else None)


def _sample_fits(text: pa.ChunkedArray, name: str) -> bool:
    sample = pc.drop_null(text.slice(0, _SAMPLE * 4))[:_SAMPLE]
    if len(sample) == 0:
        return True
    return bool(pc.all(pc.match_substring_regex(sample, _PATTERNS[name])).as_py())


def infer(values: pa.Array | pa.ChunkedArray) -> str:
    """The narrowest type every non-empty value fits; an all-empty column is text."""
    column = _as_chunked(values)
    if not pa.types.is_string(column.type):
        return type_name(column.type)
    if column.null_count == len(column):
        return "string"
    for name in INFERENCE_ORDER:
        if _sample_fits(column, name) and parse(column, name).bad is None:
            return name
    return "string"


def widen(values: pa.Array | pa.ChunkedArray, established: str) -> tuple[str, ParsedColumn]:
    """Keep ``established`` if every value fits, else the first wider type that holds them all."""
    parsed = parse(values, established)
    if parsed.bad is None:
        return established, parsed
    for wider in WIDENING.get(established, ("string",)):
        parsed = parse(values, wider)
        if parsed.bad is None:
            return wider, parsed
    raise AssertionError("string holds every value")  # pragma: no cover


def conform(values: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """Convert stored values to a (wider or configured) type; ValueError if some do not fit."""
    parsed = parse(values, name)
    if parsed.bad is not None:
        raise ValueError(f"{int(parsed.bad.sum())} stored values do not fit type {name}")
    return parsed.values
