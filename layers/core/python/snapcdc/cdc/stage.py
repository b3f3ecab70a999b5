"""The CDC stage, for one table: which snapshot to diff against, what to write, in what order.

I/O goes through :class:`~snapcdc.lake.store.S3Store`, the run records through :mod:`snapcdc.lake.records`;
the diff itself is the pure engine (:mod:`snapcdc.engine`). Rules (``docs/design.md``):

- the run record ``_runs/<table>/snapshot=<SNAP>.json`` is written last; its presence means done;
- the base of a diff is the latest earlier snapshot that was *accepted*; a refused snapshot
  (delete guard, malformed file) is recorded as such and never becomes a base;
- before processing SNAP, earlier snapshots of the table with no run record are processed first,
  in order, so the change stream has no gap whatever order events arrive in;
- every output is a pure function of the raw snapshots and the config, so reprocessing (a retried
  or duplicated event, two concurrent runs) rewrites identical objects.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from snapcdc.cdc import feeds
from snapcdc.cdc.catalog import GlueCatalog
from snapcdc.cdc.migrate import MigrationError, column_changes, footer_schema, migrate_table, reshaping
from snapcdc.cdc.routing import Deferred, SparkRoute
from snapcdc.config import PipelineConfig, TableConfig
from snapcdc.engine import DeleteGuardError, DiffOutcome, InputError, TableSpec, diff_files
from snapcdc.lake.layout import snapshot_time
from snapcdc.lake.records import (
    CatalogChange,
    RunRecord,
    SchemaMigration,
    accepted_records,
    base_record,
    commit_version,
    processed_snapshots,
    read_run_record,
    write_run_record,
)
from snapcdc.lake.store import S3Store
from snapcdc.observability import logger

PARQUET = "application/vnd.apache.parquet"


@dataclass(frozen=True)
class TableProcessor:
    store: S3Store
    table: TableConfig
    work_dir: Path = Path(tempfile.gettempdir()) / "snapcdc"
    catalog: GlueCatalog | None = None  # None: the Glue tables are not synced
    route: SparkRoute | None = None  # big snapshots go to the Spark job (snapcdc.cdc.routing); None: none do

    @property
    def name(self) -> str:
        return self.table.name

    # -- processing ------------------------------------------------------------------------
    def process(self, snap: str) -> list[RunRecord]:
        """Process ``snap`` after any earlier unprocessed snapshots; returns what was processed now."""
        snapshot_time(snap)  # validates the id
        processed = processed_snapshots(self.store, self.name)
        if snap in processed:
            return []
        pending = [s for s in self.store.raw_snapshots(self.name) if s <= snap and s not in processed]
        if snap not in pending:
            raise FileNotFoundError(
                f"no raw file for table {self.name} snapshot {snap} "
                f"(expected {self.store.layout.raw_key(self.name, snap, self.table.file)})"
            )
        records = []
        for pending_snap in pending:
            self._hand_over_if_big(pending_snap)
            record = self.process_one(pending_snap, base_record(self.store, self.name, pending_snap, processed))
            processed = sorted([*processed, pending_snap])
            records.append(record)
        return records

    def _hand_over_if_big(self, snap: str) -> None:
        """Raises :class:`~snapcdc.cdc.routing.Deferred` when the Spark job takes ``snap`` (and so the
        table's later snapshots, which it processes after it)."""
        if self.route is None:
            return
        raw_key = self.store.layout.raw_key(self.name, snap, self.table.file)
        if self.route.takes(self.store, self.name, snap, raw_key):
            raise self.route.hand_over(self.store, self.name, snap)

    def diff(self, source_key: str, old_key: str | None, snap: str, work: Path) -> DiffOutcome:
        """The engine's diff of the raw object against the old snapshot object, into ``work / "out"``."""
        new_path = self.store.download_file(source_key, work / self.table.file)
        old_path = self.store.download_file(old_key, work / "base.parquet") if old_key is not None else None
        return diff_files(
            old=old_path,
            new=new_path,
            spec=TableSpec.from_config(self.table),
            observed_at=snapshot_time(snap),
            out_dir=work / "out",
            new_name=f"s3://{self.store.bucket}/{source_key}",
        )

    def process_one(self, snap: str, base: RunRecord | None, scd2: bool = True) -> RunRecord:
        """Diff one snapshot against ``base`` and write its outputs, the run record last.

        ``scd2``: advance the SCD2 history (a replay rebuilds it once at its end instead)."""
        layout = self.store.layout
        source_key = layout.raw_key(self.name, snap, self.table.file)
        started = time.perf_counter()
        logger.append_keys(table=self.name, snapshot=snap)
        work = Path(tempfile.mkdtemp(prefix=f"{self.name}-{snap}-", dir=self._work_root()))
        try:
            old_key = None
            if base is not None:
                old_key = base.outputs["snapshot"] or layout.snapshot_key(self.name, base.snapshot)
            try:
                outcome = self.diff(source_key, old_key, snap, work)
            except (InputError, DeleteGuardError) as refusal:
                reason = "delete_guard" if isinstance(refusal, DeleteGuardError) else "malformed_input"
                record = RunRecord(
                    table=self.name,
                    snapshot=snap,
                    status="refused",
                    base_snapshot=base.snapshot if base else None,
                    source_key=source_key,
                    refused_reason=reason,
                    error=str(refusal),
                    seconds=time.perf_counter() - started,
                )
            else:
                record = self._write_outputs(snap, base, source_key, outcome, started)
                record = self._write_feeds(record, base, outcome, work, scd2)
                record = self._migrated(record, outcome, base)
                record = self._sync_catalog(record, outcome)  # after the migration: Glue says what the files say
            write_run_record(self.store, record)
            logger.info("snapshot processed", extra={"status": record.status, "stats": record.stats})
            return record
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def replay(self, from_snap: str | None = None, to_snap: str | None = None) -> list[RunRecord]:
        """Recompute outputs and run records from ``raw/`` for a range of snapshots, in order.

        For after a bug fix or a config change (e.g. allowing a refused mass delete). Idempotent.
        Snapshots after ``to_snap`` are recomputed too when the range changed which snapshot
        they are based on, so the change stream stays gap-free.
        """
        processed = processed_snapshots(self.store, self.name)
        snaps = [
            s
            for s in self.store.raw_snapshots(self.name)
            if (from_snap is None or s >= from_snap) and (to_snap is None or s <= to_snap)
        ]
        kept = [s for s in processed if s not in snaps]
        records = []
        for snap in snaps:
            records.append(self._reprocess(snap, kept))
            kept = sorted([*kept, snap])
        for later in [s for s in kept if to_snap is not None and s > to_snap]:
            record = read_run_record(self.store, self.name, later)
            base = base_record(self.store, self.name, later, kept)
            if (
                record is not None
                and record.base_snapshot == (base.snapshot if base else None)
                and (not record.accepted or record.commit_version == commit_version(self.store, self.name, later, base))
            ):
                break  # its base and commit version are unchanged, so is everything after it
            records.append(self._reprocess(later, kept))
        if self.table.outputs.scd2 is not None:
            self._drop_unreadable_scd2()  # rebuilt below; settling cannot read them
        self.settle_schema()
        if self.table.outputs.scd2 is not None:
            self.rebuild_scd2()
        return records

    def _drop_unreadable_scd2(self) -> None:
        """SCD2 files whose footer cannot be read (the rebuild that ends a replay rewrites them all)."""
        for key in self.store.list_keys(self.store.layout.scd2_prefix(self.name)):
            try:
                footer_schema(self.store, key)
            except MigrationError:
                logger.warning("unreadable scd2 file replaced", extra={"key": key})
                self.store.delete(key)

    def _migrated(self, record: RunRecord, outcome: DiffOutcome, base: RunRecord | None) -> RunRecord:
        """Brings the table's earlier files to this snapshot's schema when it changed (:mod:`snapcdc.cdc.migrate`)."""
        if base is None:
            return record
        configured = list(self.table.column_types)
        changes = column_changes(base.columns, outcome.schema, outcome.schema_changes, configured)
        if not reshaping(changes):
            return record  # the schema of the base run record: nothing to list or read
        rewritten = migrate_table(
            self.store,
            self.name,
            outcome.schema,
            record.snapshot,
            primary_key=self.table.primary_key,
            date_field=self.table.date_field,
            skip=[key for key in record.outputs.values() if key],
            work_dir=self._work_root(),
        )
        migration = SchemaMigration(columns=reshaping(changes), rewritten=rewritten)
        logger.info("schema migrated", extra={"columns": migration.columns, "rewritten": len(rewritten)})
        return record.model_copy(update={"schema_changes": changes, "migration": migration})

    def settle_schema(self) -> list[str]:
        """Brings every file of the table to the newest accepted snapshot's schema; the keys rewritten.

        The end of a replay, and the repair of a table written before the migration existed.
        """
        for snap in reversed(processed_snapshots(self.store, self.name)):
            newest = read_run_record(self.store, self.name, snap)
            if newest is not None and newest.accepted:
                break
        else:
            return []
        key = newest.outputs.get("snapshot") or self.store.layout.snapshot_key(self.name, snap)
        target = footer_schema(self.store, key)
        if target is None:
            raise FileNotFoundError(f"s3://{self.store.bucket}/{key} is missing")
        return migrate_table(
            self.store,
            self.name,
            target,
            snap,
            primary_key=self.table.primary_key,
            date_field=self.table.date_field,
            work_dir=self._work_root(),
        )

    def _reprocess(self, snap: str, processed: list[str]) -> RunRecord:
        previous = read_run_record(self.store, self.name, snap)
        if previous is not None:
            for key in previous.outputs.values():
                if key:
                    self.store.delete(key)
            self.store.delete(self.store.layout.run_record_key(self.name, snap))
        base = base_record(self.store, self.name, snap, [s for s in processed if s != snap])
        return self.process_one(snap, base, scd2=False)

    def _write_outputs(
        self, snap: str, base: RunRecord | None, source_key: str, outcome: DiffOutcome, started: float
    ) -> RunRecord:
        layout = self.store.layout
        outputs: dict[str, str | None] = {
            "snapshot": layout.snapshot_key(self.name, snap),
            "quarantine": layout.quarantine_key(self.name, snap) if outcome.quarantine_path else None,
            "cdc": None,
            "full_load": None,
        }
        if outcome.quarantine_path is not None:
            self.store.upload_file(outcome.quarantine_path, layout.quarantine_key(self.name, snap), PARQUET)
        self.store.upload_file(outcome.snapshot_path, layout.snapshot_key(self.name, snap), PARQUET)
        if base is None:
            # The table's first accepted snapshot: the full load that the change stream starts from.
            assert outcome.full_load_path is not None
            outputs["full_load"] = layout.full_load_key(self.name)
            self.store.upload_file(outcome.full_load_path, layout.full_load_key(self.name), PARQUET)
        else:
            outputs["cdc"] = layout.cdc_key(self.name, snap)
            self.store.upload_file(outcome.changes_path, layout.cdc_key(self.name, snap), PARQUET)
        return RunRecord(
            table=self.name,
            snapshot=snap,
            status="accepted",
            base_snapshot=base.snapshot if base else None,
            source_key=source_key,
            outputs=outputs,
            stats=outcome.stats.as_dict(),
            schema=[{"name": f.name, "type": str(f.type)} for f in outcome.schema],
            schema_changes=outcome.schema_changes,
            seconds=time.perf_counter() - started,
        )

    # -- the change feeds (docs/design.md, "Change feeds") ----------------------------------------
    def _write_feeds(
        self, record: RunRecord, base: RunRecord | None, outcome: DiffOutcome, work: Path, scd2: bool
    ) -> RunRecord:
        """The feeds the table enables, written beside ``cdc/`` before the run record; the record
        gets their keys and its commit version."""
        snap, layout, enabled = record.snapshot, self.store.layout, self.table.outputs
        version = commit_version(self.store, self.name, snap, base)
        at = snapshot_time(snap)
        outputs = dict(record.outputs)
        first = outcome.full_load_path if base is None else None
        changes = pq.read_table(outcome.changes_path) if first is None and enabled.enabled else None
        if enabled.changelog:
            path = work / "feed-changelog.parquet"
            if first is not None:
                feeds.stream_rows(first, path, lambda rows: feeds.changelog_inserts(rows, version, at))
            else:
                assert changes is not None
                preimages = pq.read_table(outcome.preimages_path) if outcome.preimages_path is not None else None
                feeds.write_feed(feeds.changelog_rows(changes, preimages, version, at), path)
            key = layout.changelog_key(self.name, snap)
            self.store.upload_file(path, key, PARQUET)
            outputs["changelog"] = key
        if enabled.dms:
            path = work / "feed-dms.parquet"
            if first is not None:
                feeds.stream_rows(first, path, lambda rows: feeds.dms_rows(rows, "I", at))
                key = layout.dms_load_key(self.name)
            else:
                assert changes is not None
                feeds.write_feed(feeds.dms_changes(changes, at), path)
                key = layout.dms_cdc_key(self.name, snap)
            self.store.upload_file(path, key, PARQUET)
            outputs["dms"] = key
        if enabled.scd2 is not None and scd2:
            self._advance_scd2(snap, base, outcome, changes, work)
        return record.model_copy(update={"outputs": outputs, "commit_version": version})

    def _scd2_current(self, work: Path) -> tuple[Path | None, str | None]:
        """The current versions file, downloaded, and the snapshot it is as of (its footer's mark).

        One download, then the mark read from that copy: a concurrent run of the same snapshot may
        replace the object at any time, and a mark read apart from the file could belong to another
        version of it."""
        key = self.store.layout.scd2_current_key(self.name)
        if footer_schema(self.store, key) is None:
            return None, None
        local = self.store.download_file(key, work / "scd2-base.parquet")
        marker = (pq.read_schema(local).metadata or {}).get(feeds.SCD2_METADATA)
        return local, marker.decode() if marker else None

    def _advance_scd2(self, snap: str, base: RunRecord | None, outcome: DiffOutcome, changes: Any, work: Path) -> None:
        """Rewrites the current versions file and writes the versions this snapshot closed.

        Idempotent: the current file's footer names the snapshot it is as of. Already ``snap``: an
        interrupted attempt did it. Not the base: the history is rebuilt from the ledger first."""
        layout, at = self.store.layout, snapshot_time(snap)
        current_key = layout.scd2_current_key(self.name)
        if base is None:
            assert outcome.full_load_path is not None
            path = feeds.scd2_first(outcome.full_load_path, work / "scd2-current.parquet", snap, at)
            self.store.upload_file(path, current_key, PARQUET)
            return
        current, marker = self._scd2_current(work)
        if marker == snap:
            return
        if current is None or marker != base.snapshot:
            rebuilt = self._rebuild_scd2_to(base.snapshot, work)
            assert rebuilt is not None  # the base is an accepted snapshot
            current = rebuilt
        self._scd2_step(current, changes, outcome.schema, snap, work)

    def _scd2_step(self, current: Path, changes: Any, schema: Any, snap: str, work: Path) -> Path:
        scd2 = self.table.outputs.scd2
        assert scd2 is not None
        target = work / f"scd2-{snap}.parquet"
        closed = feeds.scd2_step(
            current,
            changes,
            schema,
            self.table.primary_key,
            scd2.track_history_columns,
            snap,
            snapshot_time(snap),
            target,
        )
        if closed.num_rows:  # the closed versions first: the current file says this snapshot is done
            path = feeds.write_feed(closed, work / "scd2-closed.parquet")
            self.store.upload_file(path, self.store.layout.scd2_closed_key(self.name, snap), PARQUET)
        self.store.upload_file(target, self.store.layout.scd2_current_key(self.name), PARQUET)
        current.unlink(missing_ok=True)
        return target

    def _rebuild_scd2_to(self, upto: str | None, work: Path) -> Path | None:
        """The SCD2 history rebuilt from ``full-load/`` and the change files of the accepted snapshots
        up to ``upto``; returns the local current versions file (None: no accepted snapshot)."""
        records = accepted_records(self.store, self.name, upto)
        if not records:
            return None
        first, *later = records
        full_load = self.store.download_file(self.store.layout.full_load_key(self.name), work / "scd2-full.parquet")
        current = feeds.scd2_first(
            full_load, work / "scd2-first.parquet", first.snapshot, snapshot_time(first.snapshot)
        )
        self.store.upload_file(current, self.store.layout.scd2_current_key(self.name), PARQUET)
        for record in later:
            local = self.store.download_file(str(record.outputs["cdc"]), work / "scd2-changes.parquet")
            changes = pq.read_table(local)
            current = self._scd2_step(current, changes, changes.schema, record.snapshot, work)
        return current

    def rebuild_scd2(self) -> None:
        """The table's SCD2 history rebuilt from its ledger (the end of a replay): its files deleted,
        then written again as the runs wrote them."""
        for key in self.store.list_keys(self.store.layout.scd2_prefix(self.name)):
            self.store.delete(key)
        work = Path(tempfile.mkdtemp(prefix=f"{self.name}-scd2-", dir=self._work_root()))
        try:
            self._rebuild_scd2_to(None, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    def _sync_catalog(self, record: RunRecord, outcome: DiffOutcome) -> RunRecord:
        """The catalog follows the data: the table's Glue tables say the schema just written."""
        if self.catalog is None:
            return record
        sync = self.catalog.sync_table(self.name, outcome.schema, self.table.primary_key, self.table.outputs.enabled)
        changes = [CatalogChange.model_validate(change.as_dict()) for change in sync.changes]
        if changes:
            logger.info("glue tables changed", extra={"catalog_changes": [c.model_dump() for c in changes]})
        return record.model_copy(update={"catalog_changes": changes})

    def _work_root(self) -> Path:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return self.work_dir


@dataclass
class BatchReport:
    """What one CDC invocation did: records per processed snapshot, failures per table."""

    records: list[RunRecord] = field(default_factory=list)
    already_done: list[tuple[str, str]] = field(default_factory=list)
    deferred: list[tuple[str, str]] = field(default_factory=list)  # (table, snapshot) the Spark job processes
    ignored_keys: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "processed": [
                {"table": r.table, "snapshot": r.snapshot, "status": r.status, **r.stats} for r in self.records
            ],
            "already_done": [f"{table}@{snap}" for table, snap in self.already_done],
            "deferred_to_spark": [f"{table}@{snap}" for table, snap in self.deferred],
            "ignored_keys": self.ignored_keys,
            "failures": self.failures,
        }


def process_raw_keys(
    store: S3Store,
    config: PipelineConfig,
    keys: list[str],
    work_dir: Path | None = None,
    catalog: GlueCatalog | None = None,
    route: SparkRoute | None = None,
) -> BatchReport:
    """Process the table snapshots that ``keys`` (raw CSV object keys) belong to.

    Tables are independent: one table's failure is recorded and the others go on. With a
    ``catalog``, each accepted snapshot's Glue tables are synced before its run record is written.
    """
    report = BatchReport()
    wanted: dict[str, set[str]] = {}
    for key in keys:
        raw = store.layout.parse_raw_key(key)
        if raw is None or raw.table not in config.table_names:
            report.ignored_keys.append(key)
            continue
        wanted.setdefault(raw.table, set()).add(raw.snap)
    for table, snaps in sorted(wanted.items()):
        processor = TableProcessor(
            store, config.table(table), **({"work_dir": work_dir} if work_dir else {}), catalog=catalog, route=route
        )
        try:
            for snap in sorted(snaps):
                done = processor.process(snap)
                if not done:
                    report.already_done.append((table, snap))
                report.records.extend(done)
        except Deferred as deferred:  # the Spark job processes it, and the table's later snapshots
            report.deferred.append((deferred.table, deferred.snap))
        except Exception as error:  # recorded and re-raised by the caller after the other tables
            report.failures[table] = f"{type(error).__name__}: {error}"
    return report
