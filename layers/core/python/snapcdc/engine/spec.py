"""The engine's vocabulary: what a caller configures (:class:`TableSpec`), what a diff returns
(:class:`DiffResult`, :class:`DiffOutcome`, :class:`DiffStats`), the names of the columns the engine
adds, and the errors it raises on purpose."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from snapcdc.engine.schema import ARROW_TYPES
from snapcdc.errors import PermanentError

if TYPE_CHECKING:
    from snapcdc.config import TableConfig

CDC_OPERATION = "_cdc_operation"
CDC_TIMESTAMP = "_cdc_timestamp"
KEY_HASH = "_key_hash"
ROW_HASH = "_row_hash"
QUARANTINE_REASON = "_quarantine_reason"
SOURCE_RECORD = "_source_record"  # record number in the file, the header being record 1
HASH_COLUMNS = (KEY_HASH, ROW_HASH)
HASH_METADATA = b"snapcdc.hash"
# 3: an empty text value takes in no word, whatever its batch holds (2: it took one when every value of
# its batch was empty); 2: a row hash takes in one word per column, finalized once (1: each column finalized)
HASH_VERSION = 3

NULL_KEY = "null or empty primary key"
DUPLICATE_KEY = "duplicate primary key"


class InputError(PermanentError, ValueError):
    """Malformed input; ``str()`` is ``"{file}: line {line}: {problem}"``."""

    def __init__(self, file: str, line: int | None, problem: str) -> None:
        self.file = file
        self.line = line
        self.problem = problem
        where = f"line {line}" if line is not None else "line ?"
        super().__init__(f"{file}: {where}: {problem}")


class DeleteGuardError(PermanentError):
    """The snapshot would delete too large a share of the table; nothing was written."""

    def __init__(self, deletes: int, rows_old: int, max_ratio: float) -> None:
        self.deletes = deletes
        self.rows_old = rows_old
        self.ratio = deletes / rows_old if rows_old else 0.0
        self.max_ratio = max_ratio
        super().__init__(
            f"refusing snapshot: {deletes} deletes of {rows_old} rows "
            f"(ratio {self.ratio:.3f} > limit {max_ratio:.3f}); set allow_mass_delete to accept it"
        )


@dataclass(frozen=True)
class TableSpec:
    primary_key: tuple[str, ...]
    date_field: str | None = None
    column_types: Mapping[str, str] = field(default_factory=dict)
    delimiter: str | None = None  # None: detect ',' or ';' from the header line
    max_delete_ratio: float = 0.5
    allow_mass_delete: bool = False
    # Also return the old rows of updated keys (the pre-images a changelog needs), read as deleted
    # rows are: only the old snapshot's row groups that hold them. Off: the default path's cost.
    with_preimages: bool = False
    # Other columns the table's config names (the SCD2 tracked columns): checked against the header.
    history_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.primary_key:
            raise ValueError("primary_key needs at least one column")
        unknown = {t for t in self.column_types.values() if t not in ARROW_TYPES}
        if unknown:
            raise ValueError(f"unknown column types {sorted(unknown)}; use {sorted(ARROW_TYPES)}")

    def configured_type(self, name: str) -> str | None:
        """The type column ``name`` gets whatever its values look like: the configured one, else text
        for a primary key column (two keys are the same only when their text is: ``1.0`` and ``1.00``
        are two keys); None: typed from its values and history."""
        configured = self.column_types.get(name)
        if configured is None and name in self.primary_key:
            return "string"
        return configured

    @classmethod
    def from_config(cls, table: TableConfig) -> TableSpec:
        return cls(
            primary_key=tuple(table.primary_key),
            date_field=table.date_field,
            column_types=dict(table.column_types),
            delimiter=table.delimiter,
            max_delete_ratio=table.max_delete_ratio,
            allow_mass_delete=table.allow_mass_delete,
            with_preimages=table.outputs.changelog,
            history_columns=tuple(table.outputs.scd2.track_history_columns or ())
            if table.outputs.scd2 is not None
            else (),
        )


@dataclass
class DiffStats:
    rows_old: int
    rows_new: int
    inserts: int
    updates: int
    deletes: int
    quarantined: int
    updates_without_date_bump: int
    date_only_updates: int
    rows_snapshot: int = 0  # rows in the new accepted snapshot
    carried_forward: int = 0  # old rows kept because their key was quarantined this run

    def as_dict(self) -> dict[str, int]:
        return {f.name: int(getattr(self, f.name)) for f in fields(self)}


@dataclass
class DiffResult:
    """Table-level result of :func:`~snapcdc.engine.diff_tables` (nothing written)."""

    changes: pa.Table  # data columns + _cdc_operation + _cdc_timestamp
    snapshot: pa.Table  # accepted state: data columns + hash columns (+ hash signature metadata)
    quarantine: pa.Table | None
    stats: DiffStats
    schema: pa.Schema  # data schema, no hash/cdc columns
    schema_changes: list[dict[str, str]]
    # with_preimages: the old rows of the updated keys, in the order of the change set's U rows
    # (data columns, the new schema); None without it or without an old side.
    preimages: pa.Table | None = None


@dataclass(frozen=True)
class WrittenFile:
    """One file an engine wrote: where (a local path, an S3 key or URI), its rows and its bytes."""

    location: str
    rows: int
    bytes: int


@dataclass
class DiffOutcome:
    stats: DiffStats
    changes_path: Path
    snapshot_path: Path | None  # None: not kept (diff_files' keep_snapshot=False)
    full_load_path: Path | None
    quarantine_path: Path | None
    schema: pa.Schema
    schema_changes: list[dict[str, str]]
    seconds: float
    preimages_path: Path | None = None  # with_preimages: DiffResult.preimages as a Parquet file
    # Quirks of the new CSV read as pandas, DuckDB and Spark read them (BOM, CRLF, empty lines, ...)
    input_notes: list[str] = field(default_factory=list)
    # Every file written, by output name (snapshot, changes, full_load, quarantine, preimages): one per
    # output from the Lambda engine, a part file per partition from the Spark engine (the ``*_path``
    # fields are then folders holding them).
    files: dict[str, list[WrittenFile]] = field(default_factory=dict)
