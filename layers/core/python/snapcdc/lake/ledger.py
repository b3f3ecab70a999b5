"""The ledger: what the bucket says was done, read and written in one place.

- a table's run record ``_runs/<table>/snapshot=<SNAP>.json`` (:class:`~snapcdc.lake.records.RunRecord`),
  written last by the CDC stage: its presence means that table snapshot is done;
- the extract's manifest ``raw/_manifests/snapshot=<SNAP>.json`` (:class:`~snapcdc.lake.records.Manifest`),
  written last by the extract: its presence means the snapshot's raw objects are complete;
- the Spark job's claim ``_runs/<table>/snapshot=<SNAP>.glue.json`` (:class:`Claim`), created with a
  conditional put so that one caller only hands a snapshot to the job (:mod:`snapcdc.cdc.routing`), and
  replaced only by a conditional put on its ETag (a restart, :mod:`snapcdc.cdc.healing`); a claim is not a
  run record.

The reads (:func:`processed_snapshots`, :func:`base_record`, :func:`commit_version`,
:func:`accepted_records`) are what the CDC stage, ``verify`` and ``replay`` know of a table's history.
A document that is not a readable record raises :class:`~snapcdc.lake.records.RecordError` naming its key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from snapcdc.lake.layout import SnapshotRef, snap_from_partition
from snapcdc.lake.records import Manifest, RecordError, RunRecord
from snapcdc.lake.store import S3Store

_JSON = "application/json"
_Document = TypeVar("_Document", RunRecord, Manifest)


def _write(store: S3Store, key: str, document: RunRecord | Manifest) -> None:
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


def read_run_record(store: S3Store, table: str, snap: SnapshotRef) -> RunRecord | None:
    """The run record of ``table`` at ``snap``; None if that snapshot was not processed."""
    return _read(store, store.layout.run_record_key(table, snap), RunRecord)


def processed_snapshots(store: S3Store, table: str) -> list[str]:
    """The snapshots of ``table`` that have a run record (accepted or refused), oldest first."""
    keys = store.list_keys(store.layout.runs_prefix(table))
    return sorted(s for s in (snap_from_partition(k) for k in keys if not store.layout.is_claim(k)) if s)


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


# -- the Spark job's claims ----------------------------------------------------------------------
class Claim(BaseModel):
    """A claim's document: the job taking the snapshot, with which arguments, in which run, how many times
    the table was started again (``attempt``), and whether the restarts were given up (snapcdc.cdc.healing)."""

    # defer_build: its validator is built when a claim is first read or written (a snapshot handed to the
    # Spark job), not by every run's import (cold start).
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    job: str | None = None
    arguments: dict[str, str] = {}
    job_run: str | None = None
    attempt: int = 0
    given_up: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class HeldClaim:
    """A claim as read from the bucket: its document, the object's ETag and when it was written."""

    table: str
    snapshot: str
    claim: Claim
    etag: str
    written_at: datetime


def claim(store: S3Store, table: str, snap: SnapshotRef, document: Claim | dict[str, Any]) -> bool:
    """Creates the snapshot's claim unless it exists (S3 conditional put); whether this call created it."""
    body = Claim.model_validate(document).model_dump_json(exclude_defaults=True).encode()
    return store.put_if_absent(store.layout.claim_key(table, snap), body, _JSON)


def claimed(store: S3Store, table: str, snap: SnapshotRef) -> bool:
    """Whether the snapshot is claimed by the Spark job (its run may still be going, or have failed)."""
    return store.exists(store.layout.claim_key(table, snap))


def read_claim(store: S3Store, table: str, snap: str) -> HeldClaim | None:
    found = store.get_versioned(store.layout.claim_key(table, snap))
    if found is None:
        return None
    document = Claim.model_validate(json.loads(found.body or b"{}"))
    return HeldClaim(table, snap, document, found.etag, found.last_modified)


def replace_claim(store: S3Store, held: HeldClaim, document: Claim) -> HeldClaim | None:
    """Replaces ``held`` by ``document`` if the claim is still the one read (``If-Match`` its ETag): release
    and claim again in one step. The claim now held, or None when it changed meanwhile (another taker won)."""
    body = document.model_dump_json(exclude_defaults=True).encode()
    etag = store.put_if_match(store.layout.claim_key(held.table, held.snapshot), body, held.etag, _JSON)
    if etag is None:
        return None
    return HeldClaim(held.table, held.snapshot, document, etag, datetime.now(UTC))


def blocking_claim(store: S3Store, table: str, since: str) -> HeldClaim | None:
    """The table's earliest claim, at ``since`` or later, whose snapshot has no run record: the one that
    holds the table's later snapshots back while it waits."""
    claimed_snaps: set[str] = set()
    recorded: set[str] = set()
    for key in store.list_keys(store.layout.runs_prefix(table)):
        snap = snap_from_partition(key)
        if snap is not None and snap >= since:
            (claimed_snaps if store.layout.is_claim(key) else recorded).add(snap)
    waiting = sorted(claimed_snaps - recorded)
    return read_claim(store, table, waiting[0]) if waiting else None


# -- manifests -----------------------------------------------------------------------------------
def write_manifest(store: S3Store, manifest: Manifest) -> None:
    _write(store, store.layout.manifest_key(manifest.snapshot), manifest)


def read_manifest(store: S3Store, snap: SnapshotRef) -> Manifest | None:
    """The manifest of snapshot ``snap``; None if the extract did not finish it."""
    return _read(store, store.layout.manifest_key(snap), Manifest)
