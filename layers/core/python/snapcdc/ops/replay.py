"""Operator repair of one table: ``replay`` recomputes its outputs and run records from ``raw/``, and
``settle_schema`` brings its files to the newest accepted snapshot's schema (the end of a replay, and
the repair of a table written before the migration existed). Both run the CDC stage
(:class:`~snapcdc.cdc.stage.TableProcessor`) they are given; both are idempotent."""

from __future__ import annotations

from collections.abc import Callable

from snapcdc.cdc.migrate import MigrationError, footer_schema, migrate_table
from snapcdc.cdc.stage import TableProcessor
from snapcdc.lake.ledger import base_record, commit_version, processed_snapshots, read_run_record
from snapcdc.lake.records import RunRecord
from snapcdc.lake.snapshot import Snapshot
from snapcdc.observability import logger


def replay(
    stage: TableProcessor, from_snap: Snapshot | None = None, to_snap: Snapshot | None = None
) -> list[RunRecord]:
    """Recompute outputs and run records from ``raw/`` for a range of snapshots, in order.

    For after a bug fix or a config change (e.g. allowing a refused mass delete). Snapshots after
    ``to_snap`` are recomputed too when the range changed which snapshot they are based on, so the
    change stream stays gap-free.
    """
    store, name = stage.store, stage.name
    processed = processed_snapshots(store, name)
    snaps = [
        s
        for s in store.raw_snapshots(name)
        if (from_snap is None or s >= from_snap.id) and (to_snap is None or s <= to_snap.id)
    ]
    kept = [s for s in processed if s not in snaps]
    records = []
    for snap in snaps:
        records.append(_reprocess(stage, snap, kept))
        kept = sorted([*kept, snap])
    for later in [s for s in kept if to_snap is not None and s > to_snap.id]:
        record = read_run_record(store, name, later)
        base = base_record(store, name, later, kept)
        if (
            record is not None
            and record.base_snapshot == (base.snapshot if base else None)
            and (not record.accepted or record.commit_version == commit_version(store, name, later, base))
        ):
            break  # its base and commit version are unchanged, so is everything after it
        records.append(_reprocess(stage, later, kept))
    history = stage.scd2_history()
    if history is not None:
        _drop_unreadable(stage, store.layout.scd2_prefix(name), history.keys.owns)  # rebuilt below
    settle_schema(stage)
    if history is not None:
        history.rebuild(stage.work_root())
    if stage.iceberg is not None and stage.table.iceberg:  # docs/iceberg.md, "Verify and replay"
        stage.iceberg.rebuild(stage.name, stage.work_root())
    return records


def _drop_unreadable(stage: TableProcessor, prefix: str, owns: Callable[[str], bool]) -> None:
    """The files under ``prefix`` that the rebuild which follows rewrites (``owns``) and whose footer
    cannot be read (settling the schema could not read them); nothing else is deleted."""
    for key in [k for k in stage.store.list_keys(prefix) if owns(k)]:
        try:
            footer_schema(stage.store, key)
        except MigrationError:
            logger.warning("unreadable file replaced", extra={"key": key})
            stage.store.delete(key)


def _reprocess(stage: TableProcessor, snap: str, processed: list[str]) -> RunRecord:
    store = stage.store
    previous = read_run_record(store, stage.name, snap)
    if previous is not None:
        for key in previous.all_keys():  # every file it wrote (an output's N), and nothing else
            store.delete(key)
        store.delete(store.layout.run_record_key(stage.name, snap))
    base = base_record(store, stage.name, snap, [s for s in processed if s != snap])
    return stage.process_one(Snapshot.parse(snap), base, scd2=False)


def settle_schema(stage: TableProcessor) -> list[str]:
    """Brings every file of the table to the newest accepted snapshot's schema; the keys rewritten."""
    store, name = stage.store, stage.name
    for snap in reversed(processed_snapshots(store, name)):
        newest = read_run_record(store, name, snap)
        if newest is not None and newest.accepted:
            break
    else:
        return []
    key = next(iter(newest.keys("snapshot")), None) or store.layout.snapshot_key(name, snap)
    target = footer_schema(store, key)
    if target is None:
        raise FileNotFoundError(f"s3://{store.bucket}/{key} is missing")
    return migrate_table(
        store,
        name,
        target,
        snap,
        primary_key=stage.table.primary_key,
        date_field=stage.table.date_field,
        work_dir=stage.work_root(),
    )
