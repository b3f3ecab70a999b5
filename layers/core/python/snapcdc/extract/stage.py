"""The extract core: one Kaggle snapshot into ``raw/``, then its manifest.

Order of work, and why:

1. A manifest for this SNAP already exists: a retried or duplicated event, nothing to do.
   A manifest for a LATER snapshot exists: this event is late; today's Kaggle data cannot be
   labelled with an older SNAP without corrupting the history, so nothing is written.
2. Ask Kaggle for the current version (one small call). Same version as the latest manifest
   (same dataset, same tables): nothing changed, nothing written.
3. Stream that exact version from Kaggle into S3, ``raw/_archives/snapshot=<SNAP>/<slug>.zip``
   (multipart, aborted if the download fails). Open it in place with ranged reads (the zip's
   directory is at its end) and check it (:class:`~snapcdc.extract.safe_zip.SafeArchive`).
4. First pass: every configured member is read through all the checks and hashed (SHA-256), before
   anything is written under ``raw/<table>/``: a hostile or corrupt archive writes no table.
5. Per table: a file byte-identical (sha256) to the table's newest earlier raw object (what the
   CDC diffs against) is not uploaded again (no raw object, so no CDC run for it); a file missing
   from the dataset is reported and the other tables go on; the rest are read a second time and
   streamed to ``raw/<table>/snapshot=<SNAP>/<file>`` (one PutObject up to a part, multipart above),
   with their sha256 and Kaggle version as metadata (set when the upload starts, so known first:
   hence two passes; the second must hash to the first's digest or its upload is aborted).
6. The manifest LAST: its presence means the snapshot is complete. Its content is a pure
   function of the Kaggle version and the previous manifest (no wall-clock time), so a rerun
   writes identical bytes. Raw objects carry the Kaggle version in their metadata: a retry after
   a crash mid-upload downloads that same version again, never a newer one under the same SNAP.

Nothing is written to the local disk (the function's /tmp): memory holds at most one upload part
and one read window at a time (:mod:`snapcdc.extract.s3_stream`), whatever the dataset's size. The archive
stays under ``raw/_archives/`` (the extract's role may not delete; the bucket's lifecycle expires it).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, cast

from botocore.exceptions import ClientError
from pydantic import Field

from snapcdc.config import PipelineConfig
from snapcdc.errors import PermanentError, SnapcdcError
from snapcdc.extract.kaggle import DatasetVersion
from snapcdc.extract.kaggle.source import DownloadSink, split_dataset_ref
from snapcdc.extract.s3_stream import PART_BYTES, S3Upload
from snapcdc.extract.safe_zip import SafeArchive
from snapcdc.lake.ledger import read_manifest, write_manifest
from snapcdc.lake.records import Manifest, ManifestTable, TableStatus
from snapcdc.lake.store import S3Store

logger = logging.getLogger(__name__)

RunStatus = Literal["extracted", "already_done", "skipped_unchanged", "superseded"]
_META_VERSION = "kaggle-version"
_META_DATASET = "kaggle-dataset"
_META_UPDATED = "kaggle-last-updated"
_META_SHA256 = "sha256"


class ExtractPermissionError(PermanentError, RuntimeError):
    """The extract's role may not read what it must compare with; the message names the grant.

    Permanent: a retry runs with the same role (IAM is fixed by the deployment).
    """


class ExtractIntegrityError(SnapcdcError):
    """A member read twice from the stored archive gave different bytes (the archive changed under
    the run?). Not permanent: a retry downloads and reads it again."""


class Source(Protocol):
    """What the extract needs from Kaggle (:class:`snapcdc.extract.kaggle.KaggleSource`)."""

    def current_version(self, dataset: str) -> DatasetVersion: ...

    def download_to(self, dataset: str, open_sink: Callable[[], DownloadSink], version: int | None = None) -> int: ...


class TableOutcome(ManifestTable):
    """What the extract did with one table: its manifest entry, and the table's name (the entry's key)."""

    name: str = Field(exclude=True)


@dataclass
class ExtractReport:
    snapshot: str
    dataset: str
    status: RunStatus
    version: int | None = None
    last_updated: str | None = None
    previous_snapshot: str | None = None
    manifest_key: str | None = None
    tables: list[TableOutcome] = field(default_factory=list)

    def _names(self, status: TableStatus) -> list[str]:
        return [t.name for t in self.tables if t.status == status]

    @property
    def uploaded(self) -> list[str]:
        return self._names("uploaded")

    @property
    def unchanged(self) -> list[str]:
        return self._names("unchanged")

    @property
    def missing(self) -> list[str]:
        return self._names("missing")

    @property
    def bytes_uploaded(self) -> int:
        return sum(t.bytes for t in self.tables if t.status == "uploaded")

    def to_dict(self) -> dict[str, Any]:
        return {
            "snapshot": self.snapshot,
            "dataset": self.dataset,
            "status": self.status,
            "version": self.version,
            "last_updated": self.last_updated,
            "previous_snapshot": self.previous_snapshot,
            "manifest_key": self.manifest_key,
            "uploaded": self.uploaded,
            "unchanged": self.unchanged,
            "missing": self.missing,
            "bytes_uploaded": self.bytes_uploaded,
            "tables": {t.name: t.model_dump() for t in self.tables},
        }


@dataclass(frozen=True)
class Member:
    """A configured file as found in the archive, after the first pass: its digest and size."""

    sha256: str
    size: int


def run_extract(
    *,
    store: S3Store,
    config: PipelineConfig,
    source: Source,
    snap: str,
    part_bytes: int = PART_BYTES,
) -> ExtractReport:
    """Extract snapshot ``snap`` of ``config.dataset`` into the store; see the module docstring."""
    layout = store.layout
    manifest_key = layout.manifest_key(snap)
    report = ExtractReport(snapshot=snap, dataset=config.dataset, status="extracted", manifest_key=manifest_key)

    existing = read_manifest(store, snap)
    if existing is not None:
        logger.info("manifest %s already exists: snapshot %s is done", manifest_key, snap)
        report.status = "already_done"
        report.version = existing.version
        report.last_updated = existing.last_updated
        report.previous_snapshot = existing.previous_snapshot
        return report

    snaps = store.manifest_snapshots()
    later = [s for s in snaps if s > snap]
    if later:
        logger.warning("snapshot %s is older than the latest manifest %s: not extracted", snap, later[-1])
        report.status = "superseded"
        report.previous_snapshot = later[-1]
        return report
    previous_snap = snaps[-1] if snaps else None
    previous = read_manifest(store, previous_snap) if previous_snap else None
    if previous is not None and previous.dataset != config.dataset:
        previous = None  # another dataset: nothing to compare with
    report.previous_snapshot = previous_snap

    pinned = _version_of_partial_run(store, config, snap)
    if pinned is not None:
        logger.info("snapshot %s was partly written from Kaggle version %d: reusing it", snap, pinned.number)
    current = pinned or source.current_version(config.dataset)
    version = current.number
    report.version = version
    report.last_updated = current.last_updated

    if previous is not None and previous.version == version and _same_tables(previous, config):
        logger.info("Kaggle %s is still at version %d (snapshot %s): skipped", config.dataset, version, previous_snap)
        report.status = "skipped_unchanged"
        return report

    _, slug = split_dataset_ref(config.dataset)
    archive_name = f"{slug}.zip"
    archive_key = layout.archive_key(snap, archive_name)
    archive_metadata = {_META_DATASET: config.dataset, _META_VERSION: str(version), _META_UPDATED: current.last_updated}

    def open_sink() -> S3Upload:  # one per download attempt
        return S3Upload(
            store.client,
            store.bucket,
            archive_key,
            content_type="application/zip",
            metadata=archive_metadata,
            part_bytes=part_bytes,
        )

    size = source.download_to(config.dataset, open_sink, version=version)
    reader = store.reader(archive_key, size)
    with SafeArchive(
        reader,
        archive_name,
        {t.file for t in config.tables},
        max_member_bytes=config.max_member_bytes,
        max_total_bytes=config.max_total_bytes,
        max_compression_ratio=config.max_compression_ratio,
    ) as archive:
        # First pass: every member through every check, before a table is written.
        members = {file: _hash(archive, file) for file in archive.members}
        previous_tables = previous.tables if previous is not None else {}
        for table in config.tables:
            outcome = _table(
                store,
                snap,
                config.dataset,
                current,
                table.name,
                table.file,
                archive,
                members,
                previous_tables,
                part_bytes,
            )
            report.tables.append(outcome)
            if outcome.status == "missing":
                logger.error(
                    "table %s: file %s is not in Kaggle %s v%d",
                    table.name,
                    table.file,
                    config.dataset,
                    version,
                )
    logger.info(
        "archive %s (%d bytes): %d ranged GETs, %d bytes read", archive_key, size, reader.requests, reader.bytes_fetched
    )

    write_manifest(store, _manifest(report))
    logger.info(
        "snapshot %s: %d uploaded (%d bytes), %d unchanged, %d missing",
        snap,
        len(report.uploaded),
        report.bytes_uploaded,
        len(report.unchanged),
        len(report.missing),
    )
    return report


def _hash(archive: SafeArchive, file: str) -> Member:
    digest = hashlib.sha256()
    size = 0
    for chunk in archive.chunks(file):
        digest.update(chunk)
        size += len(chunk)
    return Member(digest.hexdigest(), size)


def _upload(
    store: S3Store, archive: SafeArchive, file: str, key: str, member: Member, metadata: dict[str, str], part_bytes: int
) -> None:
    """The second pass: the member streamed to ``key``, completed only if it hashes as in the first."""
    digest = hashlib.sha256()
    with S3Upload(
        store.client, store.bucket, key, content_type="text/csv", metadata=metadata, part_bytes=part_bytes
    ) as upload:
        for chunk in archive.chunks(file):
            digest.update(chunk)
            upload.write(chunk)
        if digest.hexdigest() != member.sha256:
            upload.abort()
            raise ExtractIntegrityError(
                f"{archive.archive_name}: member {file!r} read twice gave different bytes "
                f"(sha256 {member.sha256} then {digest.hexdigest()}); nothing written to {key}"
            )
        upload.complete()


def _table(
    store: S3Store,
    snap: str,
    dataset: str,
    version: DatasetVersion,
    name: str,
    file: str,
    archive: SafeArchive,
    members: dict[str, Member],
    previous_tables: dict[str, ManifestTable],
    part_bytes: int,
) -> TableOutcome:
    member = members.get(file)
    if member is None:
        return TableOutcome(name=name, file=file, status="missing")
    sha, size = member.sha256, member.size
    base = _latest_raw(store, name, file, snap, previous_tables.get(name))
    if base is not None and base[2] == sha:
        base_snap, base_key, _ = base
        return TableOutcome(
            name=name,
            file=file,
            status="unchanged",
            sha256=sha,
            bytes=size,
            content_snapshot=base_snap,
            content_key=base_key,
        )
    key = store.layout.raw_key(name, snap, file)
    metadata = {
        _META_DATASET: dataset,
        _META_VERSION: str(version.number),
        _META_UPDATED: version.last_updated,
        _META_SHA256: sha,
    }
    _upload(store, archive, file, key, member, metadata, part_bytes)
    return TableOutcome(
        name=name, file=file, status="uploaded", key=key, sha256=sha, bytes=size, content_snapshot=snap, content_key=key
    )


def _latest_raw(
    store: S3Store, table: str, file: str, snap: str, manifest_entry: ManifestTable | None
) -> tuple[str, str, str | None] | None:
    """(snapshot, key, sha256) of the table's newest raw object before ``snap``: what the CDC diffs against.

    Compared with the raw objects themselves, not only the previous manifest: a run that died
    before its manifest may have left a newer raw object, which the CDC has seen.
    """
    try:
        earlier = [s for s in store.raw_snapshots(table) if s < snap]
        if not earlier:
            return None
        key = store.layout.raw_key(table, earlier[-1], file)
        metadata = store.head_metadata(key)
    except ClientError as error:
        raise _permission_error(store.layout.raw_table_prefix(table), error) from error
    if metadata is None:  # another file name under that snapshot (the config changed)
        return None
    sha = metadata.get(_META_SHA256)
    if sha is None and manifest_entry is not None and manifest_entry.content_key == key:  # written without metadata
        sha = manifest_entry.sha256
    return earlier[-1], key, sha


def _permission_error(where: str, error: ClientError) -> Exception:
    code = str(error.response.get("Error", {}).get("Code"))
    if code in {"403", "AccessDenied", "Forbidden"}:
        return ExtractPermissionError(
            f"the extract cannot read {where} ({code}): its role needs s3:ListBucket on raw/ and "
            "s3:GetObject on raw/* (to compare with the previous raw objects)"
        )
    return cast(Exception, error)  # botocore has no annotations: to mypy its ClientError is Any


def _version_of_partial_run(store: S3Store, config: PipelineConfig, snap: str) -> DatasetVersion | None:
    """The Kaggle version a crashed earlier attempt of ``snap`` uploaded from, if any."""
    for table in config.tables:
        key = store.layout.raw_key(table.name, snap, table.file)
        try:
            metadata = store.head_metadata(key)
        except ClientError as error:
            raise _permission_error(key, error) from error
        if metadata and metadata.get(_META_DATASET) == config.dataset:
            value = metadata.get(_META_VERSION, "")
            if value.isdigit():
                return DatasetVersion(int(value), metadata.get(_META_UPDATED, ""))
    return None


def _same_tables(previous: Manifest, config: PipelineConfig) -> bool:
    return {n: t.file for n, t in previous.tables.items()} == {t.name: t.file for t in config.tables}


def _manifest(report: ExtractReport) -> Manifest:
    # Deterministic content only: a rerun of the same snapshot writes the same bytes.
    return Manifest(
        snapshot=report.snapshot,
        dataset=report.dataset,
        version=report.version,
        last_updated=report.last_updated,
        previous_snapshot=report.previous_snapshot,
        tables={t.name: t for t in report.tables},
    )
