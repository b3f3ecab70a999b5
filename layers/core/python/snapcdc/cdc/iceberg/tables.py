"""A table's two Iceberg tables in the Glue Data Catalog: created on first use, their schema kept current.

``<table>`` (the current state) and ``<table>_changes`` (the change stream) live in the pipeline's
Glue database, with their metadata and data under ``iceberg/<name>/`` of the pipeline's bucket.
Created with:

- format version 2; data files Parquet, zstd;
- ``commit.retry.num-retries`` 0: commits are retried by :mod:`.commit`, which re-reads the table's
  ledger first (pyiceberg's retry would re-apply a commit another writer already made);
- the snapshot retention (:mod:`.maintenance`): what expiry, by the Glue optimizer or Athena's
  ``VACUUM``, keeps; the default keeps every source snapshot for the configured days.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError, TableAlreadyExistsError
from pyiceberg.schema import Schema
from pyiceberg.table import Table

from snapcdc.cdc.iceberg.maintenance import Retention, table_properties
from snapcdc.cdc.iceberg.names import column_mapping
from snapcdc.cdc.iceberg.schema import SchemaChange, WantedColumn, apply_changes, iceberg_type, new_schema, plan_changes
from snapcdc.engine.spec import CDC_OPERATION, CDC_TIMESTAMP, HASH_COLUMNS
from snapcdc.lake.store import S3Store

CHANGE_COLUMNS = (CDC_OPERATION, CDC_TIMESTAMP)


@dataclass(frozen=True)
class TableShape:
    """The columns one of the Iceberg tables should have for a snapshot's rows."""

    names: dict[str, str]  # pipeline column -> Iceberg column
    wanted: list[WantedColumn]


def shape(schema: pa.Schema, extra: Sequence[str] = ()) -> TableShape:
    """The shape of the rows of ``schema`` (the hash columns left out); ``extra``: the pipeline's own
    columns the table carries under their own names (``_cdc_operation``...)."""
    data = [f for f in schema if f.name not in HASH_COLUMNS and f.name not in extra]
    names = column_mapping([f.name for f in data], reserved=extra)
    names.update({name: name for name in extra})
    wanted = [
        WantedColumn(names[f.name], iceberg_type(f.type, f.name), doc=f.name if names[f.name] != f.name else None)
        for f in [*data, *(schema.field(n) for n in extra)]
    ]
    return TableShape(names, wanted)


def location(store: S3Store, identifier: str) -> str:
    return f"s3://{store.bucket}/{store.layout.iceberg_prefix(identifier.split('.')[-1]).rstrip('/')}"


def load(catalog: Catalog, identifier: str) -> Table | None:
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        return None


def load_or_create(
    catalog: Catalog, store: S3Store, identifier: str, table_shape: TableShape, retention: Retention
) -> Table:
    """The table, created with ``table_shape``'s columns if it does not exist (a concurrent creation wins)."""
    table = load(catalog, identifier)
    if table is not None:
        return table
    try:
        return catalog.create_table(
            identifier,
            new_schema(table_shape.wanted),
            location=location(store, identifier),
            properties=table_properties(retention),
        )
    except TableAlreadyExistsError:
        return catalog.load_table(identifier)


def evolve(table: Table, table_shape: TableShape) -> tuple[Schema, list[SchemaChange]]:
    """The table's schema brought to hold ``table_shape`` (:mod:`.schema`'s rules), in one commit."""
    changes = plan_changes(table.schema(), table_shape.wanted)
    if changes:
        with table.transaction() as tx:
            apply_changes(tx, changes, table_shape.wanted)
    return table.schema(), changes
