"""The bucket's own record of what was done: run records and extract manifests, and the ledger reads.

Two documents, one model each, written with ``model_dump_json`` and read with
``model_validate_json`` (rules in ``docs/design.md``):

- the extract's manifest ``raw/_manifests/snapshot=<SNAP>.json`` (:class:`Manifest`), written last
  by the extract: its presence means the snapshot's raw objects are complete;
- a table's run record ``_runs/<table>/snapshot=<SNAP>.json`` (:class:`RunRecord`), written last
  by the CDC stage: its presence means that table snapshot is done.

The JSON keeps the field names and meaning of the documents written before these models, so
existing buckets read back unchanged. A document that is not one of these raises
:class:`RecordError` naming its key. The ledger reads (:func:`processed_snapshots`,
:func:`base_record`) are what the CDC stage, ``verify`` and ``replay`` know of a table's history.
"""

from __future__ import annotations

from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_serializer

from snapcdc.errors import PermanentError
from snapcdc.lake.layout import snap_from_partition
from snapcdc.lake.store import S3Store

RunStatus = Literal["accepted", "refused"]
TableStatus = Literal["uploaded", "unchanged", "missing"]
MANIFEST_FORMAT = 1
_JSON = "application/json"


class RecordError(PermanentError):
    """A run record or manifest in the bucket cannot be read; the message names its key and fields."""


class _Record(BaseModel):
    # Unknown fields are ignored, as the dict reads before these models did.
    model_config = ConfigDict(frozen=True, validate_by_name=True, validate_by_alias=True, serialize_by_alias=True)


class CatalogChange(_Record):
    """A Glue table the CDC stage created or updated after writing the snapshot (``snapcdc.cdc.catalog``)."""

    table: str  # the Glue table: <table>_cdc, <table>_full_load or <table>_snapshots
    action: Literal["created", "updated"]
    columns: list[dict[str, str]] = Field(default_factory=list)  # column, change, type (or from, to)


class SchemaMigration(_Record):
    """The earlier files of a table brought to an accepted snapshot's schema (:mod:`snapcdc.cdc.migrate`)."""

    columns: list[dict[str, str]] = Field(default_factory=list)  # the schema changes that needed it
    rewritten: list[str] = Field(default_factory=list)  # keys rewritten with the table's schema


class RunRecord(_Record):
    """What happened to one table snapshot in the CDC stage."""

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
    refused_reason: str | None = None
    error: str | None = None
    seconds: float = 0.0
    # Accepted snapshots of the table up to and including this one (1 for the first): the changelog's
    # _commit_version. From the ledger, so a replay gives the same number. None: refused, or a record
    # written before it existed (left out of the document then).
    commit_version: int | None = Field(default=None, exclude_if=lambda value: value is None)

    @property
    def accepted(self) -> bool:
        return self.status == "accepted"

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


_Document = TypeVar("_Document", RunRecord, Manifest)


def _write(store: S3Store, key: str, document: _Record) -> None:
    store.put_bytes(key, document.model_dump_json(indent=2).encode("utf-8"), content_type=_JSON)


def _read(store: S3Store, key: str, model: type[_Document]) -> _Document | None:
    body = store.get_bytes(key)
    if body is None:
        return None
    try:
        return model.model_validate_json(body)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc']) or '<document>'}: {item['msg']}" for item in error.errors()
        )
        raise RecordError(f"s3://{store.bucket}/{key} is not a readable {model.__name__}: {problems}") from None


# -- run records ---------------------------------------------------------------------------------
def write_run_record(store: S3Store, record: RunRecord) -> None:
    _write(store, store.layout.run_record_key(record.table, record.snapshot), record)


def read_run_record(store: S3Store, table: str, snap: str) -> RunRecord | None:
    """The run record of ``table`` at ``snap``; None if that snapshot was not processed."""
    return _read(store, store.layout.run_record_key(table, snap), RunRecord)


def processed_snapshots(store: S3Store, table: str) -> list[str]:
    """The snapshots of ``table`` that have a run record (accepted or refused), oldest first."""
    keys = store.list_keys(store.layout.runs_prefix(table))
    # A claim of the Spark job (snapcdc.cdc.routing, ``snapshot=<SNAP>.glue.json``) is not a run record.
    return sorted(s for s in (snap_from_partition(k) for k in keys if not k.endswith(".glue.json")) if s)


def base_record(store: S3Store, table: str, snap: str, processed: list[str]) -> RunRecord | None:
    """The run record of the latest accepted snapshot of ``processed`` before ``snap``: what it is diffed against."""
    for earlier in reversed([s for s in processed if s < snap]):
        record = read_run_record(store, table, earlier)
        if record is not None and record.accepted:
            return record
    return None


def commit_version(store: S3Store, table: str, snap: str, base: RunRecord | None) -> int:
    """The commit version of an accepted ``snap`` whose base is ``base``: one more than the base's.

    A base recorded before commit versions existed: the accepted snapshots up to ``snap`` are counted
    (a GET per run record, once: the next run reads this record's number)."""
    if base is None:
        return 1
    if base.commit_version is not None:
        return base.commit_version + 1
    earlier = [s for s in processed_snapshots(store, table) if s < snap]
    return 1 + sum(1 for s in earlier if (r := read_run_record(store, table, s)) is not None and r.accepted)


def accepted_records(store: S3Store, table: str, upto: str | None = None) -> list[RunRecord]:
    """The accepted run records of ``table`` (of snapshots up to ``upto``), oldest first."""
    found = []
    for snap in processed_snapshots(store, table):
        if upto is not None and snap > upto:
            break
        record = read_run_record(store, table, snap)
        if record is not None and record.accepted:
            found.append(record)
    return found


# -- manifests -----------------------------------------------------------------------------------
def write_manifest(store: S3Store, manifest: Manifest) -> None:
    _write(store, store.layout.manifest_key(manifest.snapshot), manifest)


def read_manifest(store: S3Store, snap: str) -> Manifest | None:
    """The manifest of snapshot ``snap``; None if the extract did not finish it."""
    return _read(store, store.layout.manifest_key(snap), Manifest)
