"""Iceberg column names (a documented rule, collisions refused) and the schema evolution plan."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pyiceberg.types import DoubleType, FloatType, IntegerType, LongType, StringType
from snapcdc.cdc.iceberg.names import ColumnNameError, column_mapping, iceberg_column
from snapcdc.cdc.iceberg.schema import WantedColumn, new_schema, plan_changes


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("idCliente", "idcliente"),
        ("Descrição", "descricao"),
        ("valor total", "valor_total"),
        ("1st-place", "_1st_place"),
        ("_cdc_operation", "_cdc_operation"),
    ],
)
def test_a_source_column_maps_to_one_name_by_the_rule(source, name):
    assert iceberg_column(source) == name


@pytest.mark.parametrize(
    "pair", [("DtCriacao", "dtcriacao"), ("Descrição", "Descricao"), ("valor total", "valor_total")]
)
def test_columns_athena_would_fold_together_are_refused_naming_both(pair):
    with pytest.raises(ColumnNameError) as refused:
        column_mapping(pair)
    assert all(repr(name) in str(refused.value) for name in pair)


def test_a_source_column_named_like_a_pipeline_column_is_refused():
    with pytest.raises(ColumnNameError, match="_CDC_Operation"):
        column_mapping(["id", "_CDC_Operation"], reserved=["_cdc_operation", "_cdc_timestamp"])


@given(st.lists(st.text(min_size=1, max_size=8), min_size=1, max_size=8, unique=True))
def test_the_mapping_never_merges_two_columns(sources):
    try:
        mapping = column_mapping(sources)
    except ColumnNameError:
        assert len({iceberg_column(s) for s in sources}) < len(sources)
        return
    assert len(set(mapping.values())) == len(sources)
    assert all(name == iceberg_column(name) for name in mapping.values())  # the rule is idempotent


def test_the_plan_adds_promotes_and_retires_by_icebergs_rules():
    # Given
    current = new_schema(
        [WantedColumn("n", IntegerType()), WantedColumn("f", FloatType()), WantedColumn("qty", LongType())]
    )
    wanted = [
        WantedColumn("n", LongType()),
        WantedColumn("f", DoubleType()),
        WantedColumn("qty", StringType()),
        WantedColumn("new", StringType()),
    ]
    # When
    changes = {c.column: c for c in plan_changes(current, wanted)}
    # Then
    assert changes["n"].change == "promoted" and changes["f"].change == "promoted"
    assert changes["qty"].change == "retired" and changes["qty"].kept_as == "qty__long"
    assert changes["new"].change == "added"
    assert plan_changes(current, [WantedColumn("n", IntegerType())]) == []
