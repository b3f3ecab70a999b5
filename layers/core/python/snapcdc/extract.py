"""The extract core: one Kaggle snapshot into ``raw/``, then its manifest.

Order of work, and why:

1. A manifest for this SNAP already exists: a retried or duplicated event, nothing to do.
   A manifest for a LATER snapshot exists: this event is late; today's Kaggle data cannot be
   labelled with an older SNAP without corrupting the history, so nothing is written.
2. Ask Kaggle for the current version (one small call). Same version as the latest manifest
   (same dataset, same tables): nothing changed, nothing written.
3. Download that exact version, extract only the configured files with the safety limits.
4. Per table: a file byte-identical (sha256) to the table's newest earlier raw object (what the
   CDC diffs against) is not uploaded again (no raw object, so no CDC run for it); a file missing
   from the dataset is reported and the other tables go on; the rest go to
   ``raw/<table>/snapshot=<SNAP>/<file>``, with their sha256 and Kaggle version as metadata.
5. The manifest LAST: its presence means the snapshot is complete. Its content is a pure
   function of the Kaggle version and the previous manifest (no wall-clock time), so a rerun
   writes identical bytes. Raw objects carry the Kaggle version in their metadata: a retry after
   a crash mid-upload downloads that same version again, never a newer one under the same SNAP.

Local files: each run works in its own folder ``<work_dir>/extract/<SNAP>-<random>/`` and removes
it at the end. A run killed before that (a Lambda timeout) leaves it behind in a reused /tmp, so
each run first removes the folders of runs that are gone: a run holds an exclusive ``flock`` on
``<folder>.lock`` while it lives (the kernel drops it with the process), so a sibling whose lock
can be taken is stale, and one whose lock is held belongs to a run still going (possible when
several runs share one process and folder, as in tests and local runs). Running out of disk space
while downloading or unzipping raises :class:`~snapcdc.errors.OutOfDiskSpaceError`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from botocore.exceptions import ClientError
from pydantic import Field

from snapcdc.config import PipelineConfig
from snapcdc.errors import OutOfDiskSpaceError, PermanentError
from snapcdc.kaggle import DatasetVersion
from snapcdc.records import Manifest, ManifestTable, TableStatus, read_manifest, write_manifest
from snapcdc.safe_zip import extract_members, is_disk_full
from snapcdc.store import S3Store

logger = logging.getLogger(__name__)

RunStatus = Literal["extracted", "already_done", "skipped_unchanged", "superseded"]
_META_VERSION = "kaggle-version"
_META_DATASET = "kaggle-dataset"
_META_UPDATED = "kaggle-last-updated"
_META_SHA256 = "sha256"
RUNS_FOLDER = "extract"  # under the work dir
_LOCK_SUFFIX = ".lock"


class ExtractPermissionError(PermanentError, RuntimeError):
    """The extract's role may not read what it must compare with; the message names the grant.

    Permanent: a retry runs with the same role (IAM is fixed by the deployment).
    """


class Source(Protocol):
    """What the extract needs from Kaggle (:class:`snapcdc.kaggle.KaggleSource`)."""

    def current_version(self, dataset: str) -> DatasetVersion: ...

    def download(self, dataset: str, dest_dir: Path, version: int | None = None) -> Path: ...


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


def sha256_file(path: Path, chunk_bytes: int = 1024 * 1024) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def run_extract(
    *,
    store: S3Store,
    config: PipelineConfig,
    source: Source,
    snap: str,
    work_dir: Path,
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

    with run_folder(work_dir, snap) as run_dir:
        try:
            zip_path = source.download(config.dataset, run_dir / "download", version=version)
        except OSError as error:
            if not is_disk_full(error):
                raise
            raise OutOfDiskSpaceError(
                f"no space left in the work dir {run_dir} while downloading Kaggle {config.dataset} version "
                f"{version} ({error.strerror}): give the extract function more ephemeral storage "
                "(extract_ephemeral_storage_mb)"
            ) from error
        files = extract_members(
            zip_path,
            run_dir / "files",
            {t.file for t in config.tables},
            max_member_bytes=config.max_member_bytes,
            max_total_bytes=config.max_total_bytes,
            max_compression_ratio=config.max_compression_ratio,
        )
        zip_path.unlink(missing_ok=True)  # free /tmp before the uploads
        previous_tables = previous.tables if previous is not None else {}
        for table in config.tables:
            outcome = _table(store, snap, config.dataset, current, table.name, table.file, files, previous_tables)
            report.tables.append(outcome)
            if outcome.status == "missing":
                logger.error(
                    "table %s: file %s is not in Kaggle %s v%d",
                    table.name,
                    table.file,
                    config.dataset,
                    version,
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


@contextlib.contextmanager
def run_folder(work_dir: Path, snap: str) -> Iterator[Path]:
    """A new folder for this run under ``<work_dir>/extract/``, locked while the run lives and removed
    after it; the folders of runs that died first are removed (see the module docstring)."""
    runs = Path(work_dir) / RUNS_FOLDER
    runs.mkdir(parents=True, exist_ok=True)
    folder = runs / f"{snap}-{uuid.uuid4().hex[:12]}"
    lock_path = folder.with_name(folder.name + _LOCK_SUFFIX)
    # The lock appears already held (locked under a hidden name, then renamed), and before the
    # folder: a folder without a lock is never a live run's, nor a lock that can be taken.
    hidden = runs / f".{lock_path.name}"
    with hidden.open("x") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        hidden.rename(lock_path)
        try:
            folder.mkdir()
            _remove_stale_runs(runs, keep=folder.name)
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            lock_path.unlink(missing_ok=True)


def _remove_stale_runs(runs: Path, keep: str) -> None:
    """Remove what runs that are gone left in ``runs``: folders whose lock nobody holds, or that have none."""
    for entry in runs.iterdir():
        if entry.name in {keep, keep + _LOCK_SUFFIX} or entry.name.startswith("."):
            continue  # this run's, or a lock being created
        if entry.name.endswith(_LOCK_SUFFIX):
            _remove_if_unlocked(entry, runs / entry.name.removesuffix(_LOCK_SUFFIX))
        elif not entry.with_name(entry.name + _LOCK_SUFFIX).exists():
            logger.info("removing %s, left by an earlier run", entry)
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)


def _remove_if_unlocked(lock_path: Path, folder: Path) -> None:
    try:
        descriptor = os.open(lock_path, os.O_RDONLY)  # never creates a lock its run has just removed
    except FileNotFoundError:
        return  # that run has just finished
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # a run still going
        logger.info("removing %s, left by a run that did not finish", folder)
        shutil.rmtree(folder, ignore_errors=True)
        lock_path.unlink(missing_ok=True)
    finally:
        os.close(descriptor)


def _table(
    store: S3Store,
    snap: str,
    dataset: str,
    version: DatasetVersion,
    name: str,
    file: str,
    files: dict[str, Path],
    previous_tables: dict[str, ManifestTable],
) -> TableOutcome:
    path = files.get(file)
    if path is None:
        return TableOutcome(name=name, file=file, status="missing")
    sha = sha256_file(path)
    size = path.stat().st_size
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
    store.upload_file_with_metadata(path, key, metadata, content_type="text/csv")
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
    return error


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
