"""An Iceberg table's schema follows the data, by Iceberg's rules of schema evolution.

Given the columns a snapshot's rows have (names already mapped by :mod:`.names`, Arrow types as the
engine writes them), :func:`plan_changes` says what the table's schema needs and :func:`apply_changes`
does it in one transaction:

- a column the table lacks is **added** (optional, at the end; the source name as its doc);
- a type Iceberg promotes in place (int -> long, float -> double) is **promoted** (metadata only);
- any other type change (the engine widens a column to text when a value no longer fits: a number,
  date or flag column that becomes ``string``) is forbidden by Iceberg. The old column is **retired**:
  renamed ``<name>__<old type>`` (e.g. ``qtdepontos__long``), keeping its field id and so every value
  the earlier snapshots wrote; then a new column ``<name>`` of the new type is added. Old Iceberg
  snapshots still read (their files carry the retired field id), the current state and the rows
  written from then on fill ``<name>``; nothing is rewritten, no value is lost.
- a column the table has and the snapshot lacks stays, null in the rows written from then on.

Pure apart from pyiceberg's metadata objects: no I/O here.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pyarrow as pa
from pyiceberg.schema import Schema
from pyiceberg.types import (
    BooleanType,
    DateType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    LongType,
    NestedField,
    PrimitiveType,
    StringType,
    TimestampType,
    TimestamptzType,
)

from snapcdc.errors import PermanentError

if TYPE_CHECKING:
    from pyiceberg.table import Transaction

# The promotions Iceberg allows in place (the spec's "Schema Evolution": int -> long, float -> double).
PROMOTIONS: frozenset[tuple[type[PrimitiveType], type[PrimitiveType]]] = frozenset(
    {(IntegerType, LongType), (FloatType, DoubleType)}
)
RETIRED = re.compile(r"__[a-z]+(_\d+)?$")  # the suffix of a retired column


class IcebergTypeError(PermanentError, ValueError):
    """An Arrow type with no Iceberg type here; the message names the column."""


@dataclass(frozen=True)
class WantedColumn:
    name: str  # the Iceberg name (snapcdc.cdc.iceberg.names)
    type: PrimitiveType
    doc: str | None = None  # the source column's name


@dataclass(frozen=True)
class SchemaChange:
    column: str
    change: Literal["added", "promoted", "retired"]
    type: str
    previous: str | None = None  # promoted, retired: the type before
    kept_as: str | None = None  # retired: the name the old column (and its values) now has

    def as_dict(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items() if v is not None}


def iceberg_type(arrow_type: pa.DataType, column: str) -> PrimitiveType:
    """The Iceberg type of an Arrow type the engine writes."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return StringType()
    if pa.types.is_integer(arrow_type):
        return LongType() if arrow_type.bit_width > 32 or arrow_type in (pa.uint32(),) else IntegerType()
    if arrow_type == pa.float32():
        return FloatType()
    if pa.types.is_floating(arrow_type):
        return DoubleType()
    if pa.types.is_boolean(arrow_type):
        return BooleanType()
    if pa.types.is_timestamp(arrow_type):
        return TimestamptzType() if arrow_type.tz is not None else TimestampType()
    if pa.types.is_date(arrow_type):
        return DateType()
    raise IcebergTypeError(f"column {column!r}: no Iceberg type for Arrow type {arrow_type}")


def _short(kind: IcebergType) -> str:
    return str(kind).split("(")[0].lower()


def retired_name(column: str, previous: IcebergType, taken: Sequence[str]) -> str:
    base = f"{column}__{_short(previous)}"
    name, n = base, 1
    while name in taken:
        n += 1
        name = f"{base}_{n}"
    return name


def plan_changes(current: Schema | None, wanted: Sequence[WantedColumn]) -> list[SchemaChange]:
    """What ``current`` needs to hold ``wanted``'s columns (None: a new table, nothing to change)."""
    if current is None:
        return []
    changes = []
    taken = [f.name for f in current.fields]
    for column in wanted:
        try:
            field = current.find_field(column.name)
        except ValueError:
            changes.append(SchemaChange(column.name, "added", str(column.type)))
            continue
        if field.field_type == column.type:
            continue
        if (type(field.field_type), type(column.type)) in PROMOTIONS:
            changes.append(SchemaChange(column.name, "promoted", str(column.type), previous=str(field.field_type)))
            continue
        kept = retired_name(column.name, field.field_type, taken)
        taken.append(kept)
        changes.append(
            SchemaChange(column.name, "retired", str(column.type), previous=str(field.field_type), kept_as=kept)
        )
    return changes


def new_schema(wanted: Sequence[WantedColumn]) -> Schema:
    """The schema of a new table: ``wanted``'s columns in order, all optional."""
    return Schema(
        *(
            NestedField(field_id=i, name=c.name, field_type=c.type, required=False, doc=c.doc)
            for i, c in enumerate(wanted, start=1)
        )
    )


def apply_changes(transaction: Transaction, changes: Sequence[SchemaChange], wanted: Sequence[WantedColumn]) -> None:
    """Stages ``changes`` in ``transaction``: renames first (a retired column frees its name), then
    promotions and additions."""
    if not changes:
        return
    by_name = {c.name: c for c in wanted}
    retired = [c for c in changes if c.change == "retired"]
    if retired:
        with transaction.update_schema() as update:
            for change in retired:
                assert change.kept_as is not None
                update.rename_column(change.column, change.kept_as)
    with transaction.update_schema() as update:
        for change in changes:
            column = by_name[change.column]
            if change.change == "promoted":
                update.update_column(change.column, field_type=column.type)
            else:
                update.add_column(change.column, column.type, doc=column.doc)
