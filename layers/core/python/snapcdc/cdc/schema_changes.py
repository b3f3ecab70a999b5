"""A run's schema changes against its base run record: what the run record lists, and whether the table's
earlier files must be migrated (:mod:`snapcdc.cdc.migrate`). Apart from the migration, which the stage
imports only when the schema changed (every run computes these; few migrate)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from snapcdc.engine.schema import ARROW_TYPES, type_name

if TYPE_CHECKING:
    import pyarrow as pa

_TYPE_NAMES = {str(arrow): name for name, arrow in ARROW_TYPES.items()}  # "double" -> "float64"


def column_changes(
    base_columns: Sequence[dict[str, str]],
    schema: pa.Schema,
    engine_changes: Sequence[dict[str, str]],
    configured: Sequence[str] = (),
) -> list[dict[str, str]]:
    """The engine's schema changes, completed from the base run record's columns.

    On a retry after a half-done migration the base snapshot may already have the new types, and the
    engine then reports nothing: the change is still a change against the base run record.
    """
    before = {c["name"]: c["type"] for c in base_columns}
    reported = {c["column"]: c for c in engine_changes}
    changes = []
    for f in schema:
        if f.name in reported:
            changes.append(reported[f.name])
        elif f.name not in before:
            changes.append({"column": f.name, "change": "added", "type": type_name(f.type)})
        elif before[f.name] != str(f.type):
            kind = "retyped" if f.name in configured else "widened"
            was = _TYPE_NAMES.get(before[f.name], before[f.name])
            changes.append({"column": f.name, "change": kind, "from": was, "to": type_name(f.type)})
    changes += [c for c in engine_changes if c["column"] not in schema.names]
    return changes


def reshaping(changes: Sequence[dict[str, str]]) -> list[dict[str, str]]:
    """The changes that alter the physical schema (a column missing from a file changes nothing)."""
    return [c for c in changes if c["change"] != "removed"]
