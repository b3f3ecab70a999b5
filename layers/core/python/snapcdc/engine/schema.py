"""Stable column types: parse text columns, infer a type for a new column, widen when values no longer fit.

Pure (pyarrow/numpy). Type names are the config's: string, int64, float64, bool, timestamp, date.
A value fits a type only when the type keeps it whole (:mod:`snapcdc.engine.fidelity`): ``007`` does
not fit int64, ``9007199254740993`` does not fit float64, a timestamp with more than 6 fractional
digits does not fit ``timestamp[us]``. Timestamps are ``timestamp[us]`` without a time zone: the
source data carries local wall-clock times (``2025-07-16 09:36:45.831``), and a value with a zone
offset does not fit (the column widens to string rather than silently shifting times).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from snapcdc.engine import arrow_numpy
from snapcdc.engine.fidelity import float_losses, int_losses

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

# What a value of each type looks like (a first filter; the parse and fidelity checks decide).
_PATTERNS = {
    "int64": r"^-?[0-9]{1,19}$",
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
    return arrow_numpy.mask(values)


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


_EXACT_DOUBLE = 2**53  # every integer up to this magnitude is a double


def losses(text: pa.ChunkedArray, typed: pa.ChunkedArray, name: str) -> np.ndarray | None:
    """Rows whose text ``typed`` (parsed to type ``name``) does not keep whole; None when every row is kept."""
    check = {"int64": int_losses, "float64": float_losses}.get(name)
    if check is None or len(text) == 0:
        return None
    if [len(c) for c in text.chunks] != [len(c) for c in typed.chunks]:
        text, typed = pa.chunked_array([text.combine_chunks()]), pa.chunked_array([typed.combine_chunks()])
    lost = np.concatenate([check(t, v) for t, v in zip(text.chunks, typed.chunks, strict=True)])
    return lost if lost.any() else None


def _dropping(typed: pa.ChunkedArray, lost: np.ndarray | None, bad: np.ndarray | None) -> ParsedColumn:
    """``typed`` with the ``lost`` rows nulled and added to ``bad``."""
    if lost is None:
        return ParsedColumn(typed, bad)
    kept = pc.if_else(arrow_numpy.arrow(lost), pa.nulls(1, typed.type)[0], typed)
    return ParsedColumn(_as_chunked(kept), lost if bad is None else (bad | lost))


def _from_integers(column: pa.ChunkedArray) -> ParsedColumn:
    """Integers as doubles; those beyond 2**53, which a double would round, flagged."""
    values = arrow_numpy.numbers(column)
    lost = (values > _EXACT_DOUBLE) | (values < -_EXACT_DOUBLE)
    typed = _as_chunked(pc.cast(column, pa.float64(), safe=False))
    return _dropping(typed, lost if lost.any() else None, None)


def parse(values: pa.Array | pa.ChunkedArray, name: str) -> ParsedColumn:
    """Convert a column to type ``name``; rows whose text does not fit (or would not be kept whole) are
    null and flagged in ``bad``."""
    column = _as_chunked(values)
    target = ARROW_TYPES[name]
    if column.type == target:
        return ParsedColumn(column, None)
    if name == "float64" and pa.types.is_integer(column.type):
        return _from_integers(column)
    if type_name(column.type) == name and name != "string":
        return ParsedColumn(pc.cast(column, target), None)
    text = _to_text(column)
    if name == "string":
        return ParsedColumn(text, None)
    if len(text) == 0 or text.null_count == len(text):
        return ParsedColumn(pa.chunked_array([pa.nulls(len(text), target)]), None)
    if name != "bool":
        try:  # the common case, every value fits: one vectorized cast and the fidelity check
            typed = _as_chunked(pc.cast(text, target))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
        else:
            return _dropping(typed, losses(text, typed, name), None)
    fits = pc.or_kleene(pc.match_substring_regex(text, _PATTERNS[name]), pc.is_null(text))  # null: nothing to fit
    clean = text if pc.all(fits).as_py() else pc.if_else(fits, text, pa.nulls(1, pa.string())[0])
    if name == "bool":
        typed = pc.equal(pc.utf8_lower(clean), arrow_numpy.scalar("true", pa.string()))
        one = pc.equal(clean, arrow_numpy.scalar("1", pa.string()))
        typed = pc.if_else(one, arrow_numpy.scalar(True, pa.bool_()), typed)
    else:
        try:
            typed = pc.cast(clean, target)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            typed = _python_parse(clean, name)
    typed = _as_chunked(typed)
    bad = pc.and_(pc.is_valid(text), pc.is_null(typed))
    bad_mask = _mask(bad)
    return _dropping(typed, losses(text, typed, name), bad_mask if bad_mask.any() else None)


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
    """Keep ``established`` if every value fits, else text, which holds them all. Never int64 to
    float64: the stored integers would become doubles, and those beyond 2**53 would not survive."""
    parsed = parse(values, established)
    if parsed.bad is None:
        return established, parsed
    return "string", parse(values, "string")


def conform(values: pa.ChunkedArray, name: str) -> pa.ChunkedArray:
    """Convert stored values to a (wider or configured) type; ValueError if some do not fit."""
    parsed = parse(values, name)
    if parsed.bad is not None:
        raise ValueError(f"{int(parsed.bad.sum())} stored values do not fit type {name}")
    return parsed.values


def conform_columns(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` in ``schema``'s column order and types: a missing column as nulls, a column of another
    type converted (values unchanged); ValueError naming the column whose values do not fit."""
    columns = []
    for target in schema:
        if target.name not in table.column_names:
            columns.append(pa.chunked_array([pa.nulls(table.num_rows, target.type)]))
            continue
        column = table[target.name]
        if column.type != target.type:
            try:
                column = conform(column, type_name(target.type))
            except (ValueError, pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
                raise ValueError(f"column {target.name} cannot become {target.type}: {error}") from None
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)
