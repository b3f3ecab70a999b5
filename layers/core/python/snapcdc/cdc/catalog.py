"""The Glue catalog follows the data: a table's Glue tables typed as its Parquet files, kept current at run time.

One job: given a table's data schema as the engine writes it (the snapshot's data columns, without
the ``_key_hash``/``_row_hash`` hash columns), create the table's three Glue tables if missing, or
update them when they differ:

- ``<table>_cdc`` over ``cdc/<table>/``: the data columns plus ``_cdc_operation`` (string) and
  ``_cdc_timestamp`` (timestamp);
- ``<table>_full_load`` over ``full-load/<table>/``: the data columns;
- ``<table>_snapshots`` over ``snapshots/<table>/``: the data columns, partitioned by ``snapshot``
  (string) with injected partition projection (a query names the snapshot it reads; no crawler,
  no MSCK REPAIR).

Cost per run: one ``GetTable`` per Glue table; ``CreateTable`` or ``UpdateTable`` only when the
table is missing or differs (no call when equal). The Glue client is passed in.

Why the Glue client and not awswrangler's catalog API (``wr.catalog.create_parquet_table``):
its ``append`` mode raises on a type change, so a widened column (``bigint`` -> ``string``)
cannot be applied; its ``overwrite`` mode always calls ``UpdateTable`` and first lists the
table's partitions (``GetPartitions``), so an unchanged schema is no longer free; and it
rewrites column names beyond lower-casing (accents stripped, other characters -> ``_``), so a
Parquet column such as ``Descrição`` would be catalogued as ``descricao`` and read by Athena as
null. Glue lower-cases names itself; that is the only change made to a name here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
from botocore.exceptions import ClientError

from snapcdc.errors import PermanentError
from snapcdc.lake.layout import Layout

CDC_COLUMNS = (
    ("_cdc_operation", "string", "I insert, U update, D delete"),
    ("_cdc_timestamp", "timestamp", "UTC time of the snapshot that observed the change"),
)
KEY_COMMENT = "primary key"
PARQUET_INPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT_FORMAT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
SNAPSHOT_PARTITION = "snapshot"
TABLE_KINDS = ("cdc", "full_load", "snapshots")


FEED_KINDS = ("changelog", "scd2", "dms")
FEED_GLUE_COLUMNS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "changelog": (
        ("_change_type", "string", "insert, delete, update_preimage, update_postimage"),
        ("_commit_version", "bigint", "accepted snapshots of the table up to this one"),
        ("_commit_timestamp", "timestamp", "UTC time of the snapshot"),
    ),
    "scd2": (
        ("valid_from", "timestamp", "UTC time of the snapshot that opened the version"),
        ("valid_to", "timestamp", "UTC time of the snapshot that closed it; null: current"),
        ("is_current", "boolean", "valid_to is null"),
    ),
    "dms": (
        ("op", "string", "I insert, U update, D delete (IncludeOpForFullLoad: I in the full load)"),
        ("dms_timestamp", "string", "UTC time of the snapshot, yyyy-MM-dd HH:mm:ss.SSSSSS"),
    ),
}
FEED_DESCRIPTIONS = {
    "changelog": "changelog rows with update pre-images, one commit version per accepted snapshot",
    "scd2": "SCD type 2 history: versions valid_from / valid_to (null: current)",
    "dms": "the AWS DMS S3 target layout: LOAD00000001.parquet, then a change file per snapshot",
}


def glue_table_names(table: str, feeds: Sequence[str] = ()) -> list[str]:
    """The Glue tables of ``table``: ``<table>_cdc``, ``<table>_full_load``, ``<table>_snapshots``, and
    ``<table>_<feed>`` for each change feed it enables (``changelog``, ``scd2``, ``dms``)."""
    return [f"{table}_{kind}" for kind in (*TABLE_KINDS, *(f for f in FEED_KINDS if f in feeds))]


class CatalogError(PermanentError, ValueError):
    """A table's schema cannot be catalogued as is (a type Glue is not given, names that collide)."""


def glue_type(arrow_type: pa.DataType) -> str:
    """The Glue (Athena) type of an Arrow type the engine writes; anything else is a CatalogError."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "string"
    if arrow_type == pa.int64():
        return "bigint"
    if arrow_type == pa.float64():
        return "double"
    if pa.types.is_boolean(arrow_type):
        return "boolean"
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    if arrow_type == pa.date32():
        return "date"
    raise CatalogError(
        f"no Glue type for Arrow type {arrow_type} (catalogued: string, int64, float64, bool, timestamp, date32)"
    )


@dataclass(frozen=True)
class Column:
    name: str  # lower-cased, as Glue stores it
    type: str
    comment: str | None = None

    def as_glue(self) -> dict[str, str]:
        column = {"Name": self.name, "Type": self.type}
        if self.comment:
            column["Comment"] = self.comment
        return column


def data_columns(schema: pa.Schema, primary_key: Sequence[str] = ()) -> list[Column]:
    """The table's data columns as Glue columns; names that collide once lower-cased are an error."""
    keys = set(primary_key)
    seen: dict[str, str] = {}
    columns = []
    for arrow_field in schema:
        name = arrow_field.name.lower()
        if name in seen:
            raise CatalogError(
                f"columns {seen[name]!r} and {arrow_field.name!r} are the same Glue column {name!r} "
                "(Glue lower-cases names): rename one in the source"
            )
        reserved = {c for c, _, _ in CDC_COLUMNS} | {c for cols in FEED_GLUE_COLUMNS.values() for c, _, _ in cols}
        if name in reserved or name == SNAPSHOT_PARTITION:
            raise CatalogError(f"column {arrow_field.name!r} is a name the Glue tables use for their own column")
        seen[name] = arrow_field.name
        columns.append(Column(name, glue_type(arrow_field.type), KEY_COMMENT if arrow_field.name in keys else None))
    return columns


# -- what changed --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ColumnChange:
    column: str
    change: Literal["added", "retyped", "removed"]
    type: str  # the type now (removed: the type it had)
    previous: str | None = None  # retyped: the type it had

    def as_dict(self) -> dict[str, str]:
        if self.change == "retyped":
            return {"column": self.column, "change": self.change, "from": str(self.previous), "to": self.type}
        return {"column": self.column, "change": self.change, "type": self.type}


@dataclass(frozen=True)
class TableChange:
    """One Glue table created or updated; ``columns`` lists its column changes (all added when created)."""

    table: str
    action: Literal["created", "updated"]
    columns: tuple[ColumnChange, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"table": self.table, "action": self.action, "columns": [c.as_dict() for c in self.columns]}


@dataclass(frozen=True)
class CatalogSync:
    """What one sync did to the Glue database: empty ``changes`` when every table was already current."""

    database: str
    changes: tuple[TableChange, ...] = field(default_factory=tuple)


def column_changes(current: Sequence[Column], desired: Sequence[Column]) -> tuple[ColumnChange, ...]:
    before = {c.name: c.type for c in current}
    after = {c.name: c.type for c in desired}
    changes = [ColumnChange(name, "added", kind) for name, kind in after.items() if name not in before]
    changes += [
        ColumnChange(name, "retyped", kind, before[name])
        for name, kind in after.items()
        if name in before and before[name] != kind
    ]
    changes += [ColumnChange(name, "removed", kind) for name, kind in before.items() if name not in after]
    return tuple(changes)


# -- the catalog ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class GlueCatalog:
    """The Glue tables of the lake in ``bucket`` under ``layout``, in Glue database ``database``."""

    glue: Any  # a boto3 Glue client
    database: str
    bucket: str
    layout: Layout = field(default_factory=Layout)

    def sync_table(
        self, table: str, schema: pa.Schema, primary_key: Sequence[str] = (), feeds: Sequence[str] = ()
    ) -> CatalogSync:
        """Create or update ``table``'s Glue tables (its three, and one per enabled feed) so that they
        say ``schema``; a no-op when they do."""
        columns = data_columns(schema, primary_key)
        definitions = self.definitions(table, columns) + self.feed_definitions(table, columns, feeds)
        changes = [self._sync(desired) for desired in definitions]
        return CatalogSync(self.database, tuple(c for c in changes if c is not None))

    def definitions(self, table: str, columns: Sequence[Column]) -> list[dict[str, Any]]:
        """The TableInput of each of ``table``'s Glue tables (as the synth-time tables had them)."""
        cdc_columns = [Column(name, kind, comment) for name, kind, comment in CDC_COLUMNS]
        snapshots = self._location(self.layout.snapshot_prefix(table))
        return [
            self._definition(
                f"{table}_cdc",
                self._location(self.layout.cdc_prefix(table)),
                [*columns, *cdc_columns],
                "change sets, one file per snapshot",
            ),
            self._definition(
                f"{table}_full_load",
                self._location(self.layout.full_load_prefix(table)),
                columns,
                "first snapshot of the table",
            ),
            self._definition(
                f"{table}_snapshots",
                snapshots,
                columns,
                f"typed copy of each accepted snapshot; filter on {SNAPSHOT_PARTITION} = 'YYYYMMDDTHHMMSSZ'",
                partitions=[Column(SNAPSHOT_PARTITION, "string")],
                # Partition projection, "injected": no crawler and no MSCK REPAIR; a query names the
                # snapshot it reads (snapshot ids are event times, not a regular grid to enumerate).
                parameters={
                    "projection.enabled": "true",
                    f"projection.{SNAPSHOT_PARTITION}.type": "injected",
                    "storage.location.template": snapshots + f"{SNAPSHOT_PARTITION}=${{{SNAPSHOT_PARTITION}}}/",
                },
            ),
        ]

    def feed_definitions(self, table: str, columns: Sequence[Column], feeds: Sequence[str]) -> list[dict[str, Any]]:
        """``<table>_changelog``, ``<table>_scd2``, ``<table>_dms`` over their prefixes, for the enabled feeds."""
        prefixes = {
            "changelog": self.layout.changelog_prefix(table),
            "scd2": self.layout.scd2_prefix(table),
            "dms": self.layout.dms_prefix(table),
        }
        definitions = []
        for kind in (k for k in FEED_KINDS if k in feeds):
            own = [Column(name, kind_, comment) for name, kind_, comment in FEED_GLUE_COLUMNS[kind]]
            ordered = [*own, *columns] if kind == "dms" else [*columns, *own]  # DMS puts Op first
            definitions.append(
                self._definition(f"{table}_{kind}", self._location(prefixes[kind]), ordered, FEED_DESCRIPTIONS[kind])
            )
        return definitions

    def _location(self, key_prefix: str) -> str:
        return f"s3://{self.bucket}/{key_prefix}"

    @staticmethod
    def _definition(
        name: str,
        location: str,
        columns: Sequence[Column],
        description: str,
        partitions: Sequence[Column] = (),
        parameters: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        return {
            "Name": name,
            "Description": description,
            "TableType": "EXTERNAL_TABLE",
            "Parameters": {"classification": "parquet", "parquet.compression": "SNAPPY", **(parameters or {})},
            "PartitionKeys": [c.as_glue() for c in partitions],
            "StorageDescriptor": {
                "Columns": [c.as_glue() for c in columns],
                "Location": location,
                "InputFormat": PARQUET_INPUT_FORMAT,
                "OutputFormat": PARQUET_OUTPUT_FORMAT,
                "SerdeInfo": {"SerializationLibrary": PARQUET_SERDE},
            },
        }

    # -- one Glue table ------------------------------------------------------------------------
    def _sync(self, desired: dict[str, Any]) -> TableChange | None:
        name = desired["Name"]
        current = self._get(name)
        if current is None:
            try:
                self.glue.create_table(DatabaseName=self.database, TableInput=desired)
            except ClientError as error:
                if _code(error) != "AlreadyExistsException":
                    raise
                current = self._get(name)  # created by a concurrent run since: compare with it
            else:
                return TableChange(name, "created", column_changes([], _columns(desired)))
        if current is None or not _differs(current, desired):
            return None
        update = {**desired, "Parameters": {**current.get("Parameters", {}), **desired["Parameters"]}}
        self.glue.update_table(DatabaseName=self.database, TableInput=update)
        return TableChange(name, "updated", column_changes(_columns(current), _columns(desired)))

    def _get(self, name: str) -> dict[str, Any] | None:
        try:
            table: dict[str, Any] = self.glue.get_table(DatabaseName=self.database, Name=name)["Table"]
        except ClientError as error:
            if _code(error) == "EntityNotFoundException":
                return None  # (a missing database fails the create_table that follows, naming it)
            raise
        return table


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code"))


def _columns(table: dict[str, Any]) -> list[Column]:
    return [
        Column(c["Name"], c["Type"], c.get("Comment") or None)
        for c in table.get("StorageDescriptor", {}).get("Columns", [])
    ]


def _shape(table: dict[str, Any]) -> dict[str, Any]:
    """The part of a table definition this module owns, but its parameters (Glue adds times, versions, defaults)."""
    descriptor = table.get("StorageDescriptor", {})
    return {
        "Description": table.get("Description"),
        "TableType": table.get("TableType"),
        "PartitionKeys": [
            Column(c["Name"], c["Type"], c.get("Comment") or None) for c in table.get("PartitionKeys", [])
        ],
        "Columns": _columns(table),
        "Location": descriptor.get("Location"),
        "InputFormat": descriptor.get("InputFormat"),
        "OutputFormat": descriptor.get("OutputFormat"),
        "Serde": descriptor.get("SerdeInfo", {}).get("SerializationLibrary"),
    }


def _differs(current: dict[str, Any], desired: dict[str, Any]) -> bool:
    """True when ``current`` does not say what ``desired`` says.

    Only the parameters this module sets are compared: parameters someone else added to a table
    do not force an update (and an update keeps them).
    """
    parameters = current.get("Parameters", {})
    return _shape(current) != _shape(desired) or any(parameters.get(k) != v for k, v in desired["Parameters"].items())
