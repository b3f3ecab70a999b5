"""One Iceberg commit per accepted source snapshot: exactly once, in snapshot order, retried on conflict.

The commit's summary names the source snapshot (``snapcdc.snapshot``, the id the run records carry)
and its counts (``snapcdc.inserts``...). That is the table's own ledger, read before every commit:

- the snapshot is already in the table's history: a retried event (or a run that lost its reply)
  commits nothing (:attr:`CommitOutcome.already`);
- the table's newest commit names a *later* snapshot: a late, older snapshot never commits after
  it (:class:`CommitOrderError`; ``snapcdc replay`` rebuilds the tables in order);
- the newest commit is not the snapshot's base (the previous accepted snapshot): the table is
  behind (:class:`BehindError`; the caller commits the missing snapshots first).

Two writers committing at once are resolved by Iceberg's optimistic concurrency: the Glue catalog
swaps the metadata pointer only if the table is still at the version the writer read, else
``CommitFailedException``. pyiceberg's own retry is turned off on these tables
(``commit.retry.num-retries`` 0): it would re-apply the same files on top of the winner, a second
commit of one snapshot. Here the table is read again and the rules above decide: the winner
committed this snapshot (done; this attempt's files are deleted, as no metadata lists them), or
something else (the commit is made again on the new head).

A crash after the data files are written and before the commit leaves them unlisted: no reader
sees them, and the next run writes its own and commits (:mod:`.files` names each attempt's files
afresh, so no file is ever overwritten). The commit takes a list of files already written
(:func:`commit_files`), so the Glue job's driver makes the same metadata-only commit of the part
files its tasks wrote as the Lambda makes of its one file.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.manifest import DataFile
from pyiceberg.table import Table

from snapcdc.cdc.iceberg.files import PartFile, data_files
from snapcdc.errors import PermanentError, SnapcdcError
from snapcdc.lake.store import S3Store

SNAPSHOT = "snapcdc.snapshot"
BASE = "snapcdc.base-snapshot"
# summary name -> the run record stats key it is read from
COUNTS = {"rows": "rows_snapshot", "inserts": "inserts", "updates": "updates", "deletes": "deletes"}
MAX_ATTEMPTS = 8
Mode = Literal["replace", "append"]


class CommitOrderError(PermanentError):
    """A snapshot older than the table's newest commit; never committed after it."""


class BehindError(SnapcdcError):
    """The table's newest commit is not the snapshot's base: earlier snapshots are missing."""

    def __init__(self, message: str, newest: str | None) -> None:
        super().__init__(message)
        self.newest = newest


class CommitConflictError(SnapcdcError):
    """Concurrent writers kept winning; transient (the event is retried)."""


@dataclass(frozen=True)
class CommitOutcome:
    table: str
    snapshot: str
    iceberg_snapshot_id: int | None  # None: nothing committed now (already)
    already: bool = False
    attempts: int = 1
    files: list[str] = field(default_factory=list)


def snapshot_of(table: Table, iceberg_snapshot_id: int) -> str | None:
    found = table.metadata.snapshot_by_id(iceberg_snapshot_id)
    return found.summary.additional_properties.get(SNAPSHOT) if found and found.summary else None


def newest_snapshot(table: Table) -> str | None:
    """The source snapshot of the table's newest snapcdc commit (None: none yet). Commits of others
    (a compaction, an expiry) are passed over: they name no source snapshot and change no rows."""
    current = table.current_snapshot()
    while current is not None:
        snap = snapshot_of(table, current.snapshot_id)
        if snap is not None:
            return snap
        parent = current.parent_snapshot_id
        current = table.metadata.snapshot_by_id(parent) if parent is not None else None
    return None


def committed_snapshots(table: Table) -> dict[str, int]:
    """Source snapshot -> Iceberg snapshot id, for every commit in the table's history."""
    found: dict[str, int] = {}
    for entry in table.history():
        snap = snapshot_of(table, entry.snapshot_id)
        if snap is not None:
            found[snap] = entry.snapshot_id
    return found


def check_order(table: Table, snap: str, base: str | None) -> bool:
    """True when ``snap`` is already committed; raises when it must not be committed now."""
    committed = committed_snapshots(table)
    if snap in committed:
        return True
    newest = newest_snapshot(table)
    if newest is not None and newest > snap:
        raise CommitOrderError(
            f"Iceberg table {table.name()} is at snapshot {newest}; {snap} is older and is never committed "
            "after it (snapcdc replay rebuilds the table in order)"
        )
    if newest != base:
        raise BehindError(f"Iceberg table {table.name()} is at {newest}, {snap} is based on {base}", newest)
    return False


def summary(snap: str, base: str | None, counts: Mapping[str, int]) -> dict[str, str]:
    props = {SNAPSHOT: snap, **{f"snapcdc.{k}": str(int(counts[s])) for k, s in COUNTS.items() if s in counts}}
    if base is not None:
        props[BASE] = base
    return props


def commit_files(
    catalog: Catalog,
    store: S3Store,
    identifier: str,
    snap: str,
    base: str | None,
    files: Sequence[PartFile],
    counts: Mapping[str, int],
    mode: Mode,
    on_conflict: Callable[[int], None] | None = None,
    loaded: Table | None = None,
) -> CommitOutcome:
    """Commits ``files`` (already uploaded, in the table's schema) as source snapshot ``snap``.

    ``replace``: they become the table's whole content (the current state); ``append``: they are
    added (the change stream). No files is a commit too (an empty change set), carrying the summary.
    ``on_conflict(attempt)`` is called before each retry; ``loaded``: the table as just loaded (the
    first attempt's; each retry loads it again)."""
    keys = [f"s3://{store.bucket}/{f.key}" for f in files]
    for attempt in range(1, MAX_ATTEMPTS + 1):
        table = loaded if loaded is not None and attempt == 1 else catalog.load_table(identifier)
        if check_order(table, snap, base):
            _forget_unlisted(store, table, committed_snapshots(table)[snap], files)
            return CommitOutcome(identifier, snap, None, already=True, attempts=attempt)
        entries = data_files(store, table.metadata, files)
        try:
            replaced = _live_files(table, table.metadata.current_snapshot_id) if mode == "replace" else []
            with table.transaction() as tx:
                update = tx.update_snapshot(snapshot_properties=summary(snap, base, counts))
                with update.overwrite() if replaced else update.fast_append() as change:
                    for old in replaced:
                        change.delete_data_file(old)
                    for entry in entries:
                        change.append_data_file(entry)
        except CommitFailedException:
            if on_conflict is not None:
                on_conflict(attempt)
            time.sleep(min(0.05 * 2**attempt, 2.0))
            continue
        return CommitOutcome(identifier, snap, table.metadata.current_snapshot_id, attempts=attempt, files=keys)
    raise CommitConflictError(f"Iceberg table {identifier}: {MAX_ATTEMPTS} commits of {snap} lost to other writers")


def _live_files(table: Table, iceberg_snapshot_id: int | None) -> list[DataFile]:
    """The data files of one Iceberg snapshot of the table (none before its first commit)."""
    snapshot = table.metadata.snapshot_by_id(iceberg_snapshot_id) if iceberg_snapshot_id is not None else None
    if snapshot is None:
        return []
    return [
        entry.data_file
        for manifest in snapshot.manifests(table.io)
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
    ]


def _forget_unlisted(store: S3Store, table: Table, iceberg_snapshot_id: int, files: Sequence[PartFile]) -> None:
    """Deletes the files of ``files`` that the committed snapshot does not list: written by this
    attempt for a commit another writer made, they are nobody's."""
    listed = {f.file_path for f in _live_files(table, iceberg_snapshot_id)}
    for part in files:
        if f"s3://{store.bucket}/{part.key}" not in listed:
            store.delete(part.key)
