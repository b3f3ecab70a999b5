"""The bucket's own record of what was done: the run record and extract manifest documents.

Two documents, one model each, written with ``model_dump_json`` and read with
``model_validate_json`` (rules in ``docs/design.md``):

- the extract's manifest ``raw/_manifests/snapshot=<SNAP>.json`` (:class:`Manifest`), written last
  by the extract: its presence means the snapshot's raw objects are complete;
- a table's run record ``_runs/<table>/snapshot=<SNAP>.json`` (:class:`RunRecord`), written last
  by the CDC stage: its presence means that table snapshot is done.

The JSON keeps the field names and meaning of the documents written before these models, so
existing buckets read back unchanged. A document that is not one of these raises
:class:`RecordError` naming its key. Reading and writing them, and what they say of a table's history,
is :mod:`snapcdc.lake.ledger`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer

from snapcdc.errors import PermanentError

RunStatus = Literal["accepted", "refused"]
TableStatus = Literal["uploaded", "unchanged", "missing"]
MANIFEST_FORMAT = 1


class RefusalReason(StrEnum):
    """Why a snapshot was refused (a refused snapshot never becomes a base); the record's JSON holds the value."""

    DELETE_GUARD = "delete_guard"  # it would delete more rows than the table allows
    MALFORMED_INPUT = "malformed_input"  # its file cannot be read as the table


class RecordError(PermanentError):
    """A run record or manifest in the bucket cannot be read; the message names its key and fields."""


class _Record(BaseModel):
    # Unknown fields are ignored, as the dict reads before these models did. defer_build: a model's
    # validator is built on first use, so a function builds only the records it handles (cold start).
    model_config = ConfigDict(
        frozen=True, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True, defer_build=True
    )


class CatalogChange(_Record):
    """A Glue table the CDC stage created or updated after writing the snapshot (``snapcdc.cdc.catalog``)."""

    table: str  # the Glue table: <table>_cdc, <table>_full_load or <table>_snapshots
    action: Literal["created", "updated"]
    columns: list[dict[str, str]] = Field(default_factory=list)  # column, change, type (or from, to)


class SchemaMigration(_Record):
    """The earlier files of a table brought to an accepted snapshot's schema (:mod:`snapcdc.cdc.migrate`)."""

    columns: list[dict[str, str]] = Field(default_factory=list)  # the schema changes that needed it
    rewritten: list[str] = Field(default_factory=list)  # keys rewritten with the table's schema


class OutputFile(_Record):
    """One file of an output, as the run record lists it: its key, rows and bytes."""

    key: str
    rows: int
    bytes: int


class RunRecord(_Record):
    """What happened to one table snapshot in the CDC stage.

    An output is N files: ``files[name]`` lists them (the CDC function writes N = 1, the Spark job a part
    per task); ``outputs[name]`` keeps the output's key (N = 1) or its first part's key, as records
    written before ``files`` existed hold it. Read an output's keys with :meth:`keys`, never ``outputs``."""

    table: str
    snapshot: str
    status: RunStatus
    base_snapshot: str | None
    source_key: str
    outputs: dict[str, str | None] = Field(default_factory=dict)  # snapshot, quarantine, cdc, full_load
    stats: dict[str, int] = Field(default_factory=dict)
    columns: list[dict[str, str]] = Field(default_factory=list, alias="schema")  # name, type
    schema_changes: list[dict[str, str]] = Field(default_factory=list)
    # The Glue tables created or updated for this snapshot; written only when there are some (records
    # written before the catalog followed the data, or with no catalog, read back with none).
    catalog_changes: list[CatalogChange] = Field(default_factory=list, exclude_if=lambda changes: not changes)
    # None: the schema did not change; left out of the document then, as in records written before it.
    migration: SchemaMigration | None = Field(default=None, exclude_if=lambda value: value is None)
    refused_reason: RefusalReason | None = None
    error: str | None = None
    seconds: float = 0.0
    # Accepted snapshots of the table up to and including this one (1 for the first): the changelog's
    # _commit_version. From the ledger, so a replay gives the same number. None: refused, or a record
    # written before it existed (left out of the document then).
    commit_version: int | None = Field(default=None, exclude_if=lambda value: value is None)
    # Quirks of the raw CSV read without options as pandas, DuckDB and Spark read them (a BOM, CRLF line
    # ends, empty lines); left out of the document when there are none.
    input_notes: list[str] = Field(default_factory=list, exclude_if=lambda notes: not notes)
    # Every file of every output, by output name (snapshot, quarantine, cdc, full_load, changelog, dms,
    # scd2_closed); left out of the document when empty (records written before it: one key per output).
    files: dict[str, list[OutputFile]] = Field(default_factory=dict, exclude_if=lambda files: not files)

    def keys(self, output: str) -> list[str]:
        """The keys of one output's files: as listed in ``files``, else the one key ``outputs`` names
        (a record written before files were listed); none when the output was not written."""
        if output in self.files:
            return [file.key for file in self.files[output]]
        key = self.outputs.get(output)
        return [key] if key else []

    def all_keys(self) -> list[str]:
        """Every key this run wrote, over all outputs."""
        names = dict.fromkeys([*self.outputs, *self.files])
        return [key for name in names for key in self.keys(name)]

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"

    def summary_line(self) -> dict[str, object]:
        """The record in one JSON line's worth: status, counts, why refused, files migrated."""
        line: dict[str, object] = {"table": self.table, "snapshot": self.snapshot, "status": self.status}
        line.update(self.stats)
        if not self.accepted:
            line.update(refused_reason=self.refused_reason, error=self.error)
        if self.migration is not None:
            line["migrated"] = len(self.migration.rewritten)
        return line

    @field_serializer("seconds")
    def _milliseconds(self, seconds: float) -> float:
        return round(seconds, 3)


class ManifestTable(_Record):
    """One table's entry in a manifest (the manifest's ``tables`` maps the table name to it)."""

    file: str
    status: TableStatus
    key: str | None = None  # the raw object written by this snapshot
    sha256: str | None = None
    bytes: int = 0
    content_snapshot: str | None = None  # the snapshot whose raw object holds these bytes
    content_key: str | None = None


class Manifest(_Record):
    """What one extract run wrote. Deterministic content only: a rerun writes the same bytes."""

    format: int = MANIFEST_FORMAT
    snapshot: str
    dataset: str
    version: int | None
    last_updated: str | None
    previous_snapshot: str | None
    tables: dict[str, ManifestTable]
