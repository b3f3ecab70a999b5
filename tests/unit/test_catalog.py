"""snapcdc.cdc.catalog without Glue: Arrow -> Glue types, column names, column changes, table definitions."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest
from snapcdc.cdc.catalog import CatalogError, Column, GlueCatalog, column_changes, data_columns, glue_type
from snapcdc.lake.layout import Layout


@pytest.mark.parametrize(
    ("arrow_type", "expected"),
    [
        (pa.string(), "string"),
        (pa.int64(), "bigint"),
        (pa.float64(), "double"),
        (pa.bool_(), "boolean"),
        (pa.timestamp("us"), "timestamp"),
        (pa.timestamp("us", tz="UTC"), "timestamp"),
        (pa.date32(), "date"),
    ],
)
def test_the_types_the_engine_writes_map_to_glue_types(arrow_type, expected):
    assert glue_type(arrow_type) == expected


@pytest.mark.parametrize("arrow_type", [pa.int32(), pa.binary(), pa.decimal128(10, 2), pa.list_(pa.string())])
def test_any_other_arrow_type_is_a_clear_error(arrow_type):
    # When / Then
    with pytest.raises(CatalogError, match=re.escape(f"no Glue type for Arrow type {arrow_type} ")):
        glue_type(arrow_type)


def test_data_columns_are_lower_cased_and_keys_commented():
    # Given
    schema = pa.schema([("idCliente", pa.string()), ("QtdePontos", pa.int64())])
    # When
    columns = data_columns(schema, primary_key=("idCliente",))
    # Then
    assert columns == [Column("idcliente", "string", "primary key"), Column("qtdepontos", "bigint")]


def test_names_colliding_when_lower_cased_are_an_error_naming_both():
    # Given
    schema = pa.schema([("id", pa.string()), ("DtCriacao", pa.string()), ("dtcriacao", pa.string())])
    # When / Then
    with pytest.raises(CatalogError, match=r"'DtCriacao' and 'dtcriacao' are the same Glue column 'dtcriacao'"):
        data_columns(schema)


def test_a_data_column_named_like_a_column_of_the_glue_tables_is_an_error():
    with pytest.raises(CatalogError, match="'Snapshot'"):
        data_columns(pa.schema([("id", pa.string()), ("Snapshot", pa.string())]))


def test_column_changes_list_added_retyped_and_removed_columns():
    # Given
    current = [Column("a", "string"), Column("b", "bigint"), Column("c", "date")]
    desired = [Column("a", "string"), Column("b", "string"), Column("d", "double")]
    # When
    changes = [c.as_dict() for c in column_changes(current, desired)]
    # Then
    assert changes == [
        {"column": "d", "change": "added", "type": "double"},
        {"column": "b", "change": "retyped", "from": "bigint", "to": "string"},
        {"column": "c", "change": "removed", "type": "date"},
    ]


def test_locations_without_a_data_prefix():
    # Given a bucket with no DATA_PREFIX
    catalog = GlueCatalog(glue=None, database="snapcdc", bucket="lake-bucket", layout=Layout())
    # When
    cdc, full_load, snapshots = catalog.definitions("clientes", [Column("id", "string")])
    # Then
    assert cdc["StorageDescriptor"]["Location"] == "s3://lake-bucket/cdc/clientes/"
    assert full_load["StorageDescriptor"]["Location"] == "s3://lake-bucket/full-load/clientes/"
    template = snapshots["Parameters"]["storage.location.template"]
    assert template == "s3://lake-bucket/snapshots/clientes/snapshot=${snapshot}/"
