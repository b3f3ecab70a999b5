"""Typing never loses a value: the user-reported findings, and properties over values that tempt a typer."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from snapcdc.engine import CDC_OPERATION, TableSpec, data_only, diff_files, diff_tables
from snapcdc.engine.fidelity import float_losses, int_losses
from snapcdc.engine.schema import infer, parse
from snapcdc.engine.spec import DUPLICATE_KEY

from tests.unit.engine.diff_model import text_table

OBSERVED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _changes(result) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {str(row["id"]): row[CDC_OPERATION] for row in result.changes.to_pylist()}


# -- the findings ---------------------------------------------------------------------------------
def test_postal_codes_keep_their_leading_zeros_and_a_change_of_zeros_is_reported():
    # Given postal codes with leading zeros (finding 1: typed int64, output 501, change not reported)
    spec = TableSpec(primary_key=("id",))
    old = diff_tables(
        None, text_table([{"id": "a", "cep": "00501"}, {"id": "b", "cep": "01310"}], ("id", "cep")), spec, OBSERVED
    )
    new_rows = [{"id": "a", "cep": "00501"}, {"id": "b", "cep": "1310"}]
    # When the next snapshot drops a leading zero
    result = diff_tables(old.snapshot, text_table(new_rows, ("id", "cep")), spec, OBSERVED)
    # Then the column is text, holds the codes as written, and the change is an update
    assert data_only(old.snapshot).schema.field("cep").type == pa.string()
    assert data_only(old.snapshot)["cep"].to_pylist() == ["00501", "01310"]
    assert _changes(result) == {"b": "U"}
    assert result.changes["cep"].to_pylist() == ["1310"]


def test_keys_007_and_7_are_different_rows():
    # Given keys 007 and 7 (finding 2: typed as the same integer, both quarantined, an update lost)
    spec = TableSpec(primary_key=("id",))
    columns = ("id", "v")
    old = diff_tables(
        None,
        text_table([{"id": "007", "v": "x"}, {"id": "7", "v": "y"}, {"id": "8", "v": "z"}], columns),
        spec,
        OBSERVED,
    )
    # When key 7 is updated
    new_rows = [{"id": "007", "v": "x"}, {"id": "7", "v": "changed"}, {"id": "8", "v": "z"}]
    result = diff_tables(old.snapshot, text_table(new_rows, columns), spec, OBSERVED)
    # Then nothing is quarantined, the old side holds all three rows, and the update of 7 is reported
    assert old.stats.quarantined == 0 and result.stats.quarantined == 0
    assert result.stats.rows_old == 3
    assert _changes(result) == {"7": "U"}


def test_integers_beyond_a_double_are_never_stored_as_doubles():
    # Given 2**53 + 1 and a 20-digit number (finding 3: typed double, a change not reported)
    spec = TableSpec(primary_key=("id",))
    columns = ("id", "n", "big")
    old = diff_tables(
        None, text_table([{"id": "a", "n": "9007199254740993", "big": "12345678901234567890"}], columns), spec, OBSERVED
    )
    # When n becomes 2**53 (the same double as 2**53 + 1)
    new_rows = [{"id": "a", "n": "9007199254740992", "big": "12345678901234567890"}]
    result = diff_tables(old.snapshot, text_table(new_rows, columns), spec, OBSERVED)
    # Then n is an exact int64, the 20-digit number is text, and the change is reported
    assert data_only(old.snapshot).schema.field("n").type == pa.int64()
    assert data_only(old.snapshot).schema.field("big").type == pa.string()
    assert data_only(old.snapshot)["big"].to_pylist() == ["12345678901234567890"]
    assert _changes(result) == {"a": "U"}
    assert result.changes["n"].to_pylist() == [9007199254740992]


def test_a_value_a_declared_type_would_change_is_quarantined_not_changed():
    # Given a declared int64 column and a value it would not keep whole
    spec = TableSpec(primary_key=("id",), column_types={"n": "int64"})
    rows = [{"id": "a", "n": "007"}, {"id": "b", "n": "7"}]
    # When loaded
    result = diff_tables(None, text_table(rows, ("id", "n")), spec, OBSERVED)
    # Then the declared type holds, and the misfit row is set aside with its text, never turned into 7
    assert data_only(result.snapshot).schema.field("n").type == pa.int64()
    assert data_only(result.snapshot).to_pylist() == [{"id": "b", "n": 7}]
    assert result.quarantine is not None
    assert result.quarantine["n"].to_pylist() == ["007"]
    assert "int64" in result.quarantine["_quarantine_reason"][0].as_py()
    assert DUPLICATE_KEY not in result.quarantine["_quarantine_reason"][0].as_py()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["1", "-2", "0"], "int64"),
        (["007", "7"], "string"),
        (["-0"], "float64"),  # -0.0 keeps its sign; an integer would not
        (["+7"], "string"),
        ([" 7"], "string"),
        (["0x10"], "string"),
        (["9223372036854775807"], "int64"),
        (["9223372036854775808"], "string"),
        (["0.1", "2.50", "1e5", "1E+05"], "float64"),
        (["00501.5"], "string"),
        (["9007199254740993.0"], "string"),
        (["1e-400"], "string"),
        (["NaN", "1.5"], "string"),
        (["inf"], "string"),
        (["2025-07-16 09:36:45.123456"], "timestamp"),
        (["2025-07-16 09:36:45.123456789"], "string"),
    ],
)
def test_inference_types_a_column_only_when_every_value_survives(values: list[str], expected: str):
    assert infer(pa.array(values)) == expected


# -- properties -------------------------------------------------------------------------------------
INTEGER_TEXT = st.one_of(
    st.integers(-(2**63), 2**63 - 1).map(str),
    st.integers(0, 10**6).map(lambda n: f"0{n}"),  # leading zeros
    st.integers(0, 10**6).map(lambda n: f"-0{n}"),
    st.integers(0, 10**6).map(lambda n: f"+{n}"),
    st.integers(-(10**25), 10**25).map(str),  # beyond int64
    st.sampled_from(["-0", "0", " 1", "1 ", "0x1F", "1_000", "١٢"]),
)
FLOAT_TEXT = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.integers(0, 20)
    .flatmap(lambda places: st.decimals(allow_nan=False, allow_infinity=False, places=places))
    .map(str),
    st.integers(-(10**20), 10**20).map(lambda n: f"{n}e{n % 40 - 20}"),
    st.sampled_from(["NaN", "nan", "inf", "-Infinity", "1e-400", "1e400", "00.5", "+1.5", " 1.5", "1.", ".5", "-0.0"]),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), INTEGER_TEXT), min_size=1, max_size=30))
def test_an_integer_kept_is_its_text_and_every_other_is_flagged(texts: list[str | None]):
    # Given texts that tempt an integer parser, parsed as int64
    parsed = parse(pa.array(texts, pa.string()), "int64")
    # Then every value kept writes back as its text, and every text that would not is flagged
    bad = parsed.bad if parsed.bad is not None else [False] * len(texts)
    for text, value, flagged in zip(texts, parsed.values.to_pylist(), bad, strict=True):
        if text is None:
            assert value is None and not flagged
        elif flagged:
            assert value is None
        else:
            assert str(value) == text


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.none(), FLOAT_TEXT), min_size=1, max_size=30))
def test_a_float_kept_is_the_number_written_and_every_other_is_flagged(texts: list[str | None]):
    # Given texts that tempt a float parser, parsed as float64
    parsed = parse(pa.array(texts, pa.string()), "float64")
    bad = parsed.bad if parsed.bad is not None else [False] * len(texts)
    for text, value, flagged in zip(texts, parsed.values.to_pylist(), bad, strict=True):
        if text is None or flagged:
            assert value is None
            continue
        # Then a kept value is a finite double equal to the decimal written, without padding
        assert Decimal(text) == Decimal(repr(value)), text
        assert (
            not text.startswith(("+", "0", "-0"))
            or text.lstrip("-").startswith(("0.", "0e", "0E"))
            or text.lstrip("-") == "0"
        )
    # And a finite decimal without padding whose double is exact is never flagged
    for text, flagged in zip(texts, bad, strict=True):
        if text is None or text.strip() != text or text.startswith("+"):
            continue
        try:
            number = Decimal(text)
        except ArithmeticError:
            continue
        body = text.lstrip("-")
        padded = len(body) > 1 and body[0] == "0" and body[1].isdigit()
        if (
            number.is_finite()
            and not padded
            and abs(float(number)) != float("inf")
            and Decimal(repr(float(number))) == number
        ):
            assert not flagged, text


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=1, max_size=50))
def test_canonical_integers_are_never_flagged(values: list[int]):
    text = pa.array([str(v) for v in values])
    assert not int_losses(text, pa.array(values, pa.int64())).any()
    assert not float_losses(pa.array(["1.5"] * len(values)), pa.array([1.5] * len(values))).any()


TEMPTING = st.one_of(INTEGER_TEXT, FLOAT_TEXT, st.sampled_from(["", "2025-07-16 09:36:45.123456789", "abc", " 7 "]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, 8).map(lambda k: f"{k:0{k % 3 + 1}d}"), TEMPTING), min_size=1, max_size=20),
    st.lists(TEMPTING, min_size=1, max_size=20),
)
def test_a_changed_text_is_an_update_unless_it_is_the_same_number(
    old_pairs: list[tuple[str, str]], new_values: list[str]
):
    # Given an old snapshot of tempting values under text keys that tempt a typer (0, 00, 000, 1, 01 ...)
    old_rows = {key: value for key, value in old_pairs}
    keys = list(old_rows)
    new_rows = {key: new_values[i % len(new_values)] for i, key in enumerate(keys)}
    spec = TableSpec(primary_key=("id",), max_delete_ratio=1.0)
    columns = ("id", "v")
    old = diff_tables(
        None, text_table([{"id": k, "v": v or None} for k, v in old_rows.items()], columns), spec, OBSERVED
    )
    # When each value is replaced, types inferred
    result = diff_tables(
        old.snapshot, text_table([{"id": k, "v": v or None} for k, v in new_rows.items()], columns), spec, OBSERVED
    )
    # Then no key collapsed, and a key is updated exactly when its text changed (as a number, for a float
    # column; a float column widened to text holds its earlier values as their shortest decimal)
    assert old.stats.quarantined == 0 and result.stats.rows_old == len(keys)
    kind = data_only(result.snapshot).schema.field("v").type
    was_float = pa.types.is_floating(data_only(old.snapshot).schema.field("v").type)

    def same(a: str, b: str) -> bool:
        if pa.types.is_floating(kind) and a and b:
            return Decimal(a) == Decimal(b)
        if was_float and a:
            a = pa.array([float(a)]).cast(pa.string())[0].as_py()
        return a == b

    expected = {k: "U" for k in keys if not same(old_rows[k], new_rows[k])}
    assert _changes(result) == expected


def test_the_streamed_csv_path_keeps_a_late_leading_zero(tmp_path):
    # Given a CSV whose number column looks like integers for 20,000 rows, then holds "01310"
    path = tmp_path / "new.csv"
    with path.open("w") as out:
        out.write("id;cep\n")
        for i in range(20_000):
            out.write(f"k{i};{10_000 + i}\n")
        out.write("late;01310\n")
    spec = TableSpec(primary_key=("id",))
    # When it is loaded through the file path (typed CSV read, which falls back to the exact parse)
    result = diff_files(old=None, new=path, spec=spec, observed_at=OBSERVED, out_dir=tmp_path / "out")
    # Then the column is text and the late value is as written
    snapshot = pq.read_table(result.snapshot_path)
    assert snapshot.schema.field("cep").type == pa.string()
    assert snapshot["cep"].to_pylist()[-1] == "01310"
    assert snapshot["cep"].to_pylist()[0] == "10000"


def test_the_streamed_csv_path_types_canonical_numbers(tmp_path):
    # Given a CSV of canonical integers and floats
    path = tmp_path / "new.csv"
    path.write_text("id,n,x\n1,-5,0.25\n2,9223372036854775807,1e5\n3,0,-0.0\n")
    # When loaded through the file path
    result = diff_files(
        old=None, new=path, spec=TableSpec(primary_key=("id",)), observed_at=OBSERVED, out_dir=tmp_path / "out"
    )
    # Then they are typed, every value exact
    snapshot = pq.read_table(result.snapshot_path)
    assert snapshot.schema.field("n").type == pa.int64()
    assert snapshot["n"].to_pylist() == [-5, 9223372036854775807, 0]
    assert snapshot.schema.field("x").type == pa.float64()
    assert snapshot["x"].to_pylist() == [0.25, 100000.0, -0.0]


@pytest.mark.parametrize("check", [int_losses, float_losses])
def test_padding_is_found_in_a_slice_and_past_trailing_empty_values(check):
    # Given a text column sliced from a larger one, whose last values are null (empty: they start where
    # the text bytes end) and whose padded values sit between canonical ones
    whole = pa.array(["+9", "5", "007", "12", "-0", "+3", None, None])
    text = whole.slice(1)
    number = float if check is float_losses else int
    typed = pa.array([None if value is None else number(value) for value in text.to_pylist()])
    # When the losses of its cast are computed
    lost = check(text, typed)
    # Then exactly the padded values are flagged ("-0" only as an integer: -0.0 is a float that keeps it)
    padded = {"007", "+3"} | ({"-0"} if check is int_losses else set())
    assert lost.tolist() == [value in padded for value in text.to_pylist()]
