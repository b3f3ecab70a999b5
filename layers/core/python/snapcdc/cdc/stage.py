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

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from snapcdc.cdc.catalog import GlueCatalog
from snapcdc.cdc.engines import ArrowEngine, CdcEngine, Placement
from snapcdc.cdc.placed import accepted_record, localized, placed_record
from snapcdc.cdc.routing import SparkRoute
from snapcdc.cdc.schema_changes import column_changes, reshaping
from snapcdc.config import TableConfig
from snapcdc.engine import DeleteGuardError, DiffOutcome, InputError, TableSpec
from snapcdc.lake.ledger import (
    base_record,
    commit_version,
    processed_snapshots,
    write_run_record,
)
from snapcdc.lake.records import CatalogChange, OutputFile, RefusalReason, RunRecord, SchemaMigration
from snapcdc.lake.snapshot import Snapshot
from snapcdc.lake.store import PARQUET, S3Store
from snapcdc.logs import append_keys, reset_keys

logger = logging.getLogger(__name__)

if TYPE_CHECKING:  # pyiceberg is imported only where a table enables Iceberg, the feeds where it enables one
    from snapcdc.cdc.feeds.scd2 import Scd2History
    from snapcdc.cdc.iceberg.sync import IcebergLake


@dataclass(frozen=True)
class TableProcessor:
    """The CDC stage of one table: ``engine`` diffs, this writes what the diff says, the run record last."""

    store: S3Store
    table: TableConfig
    work_dir: Path = Path(tempfile.gettempdir()) / "snapcdc"
    catalog: GlueCatalog | None = None  # None: the Glue tables are not synced
    route: SparkRoute | None = None  # big snapshots go to the Spark job (snapcdc.cdc.routing); None: none do
    engine: CdcEngine = field(default_factory=ArrowEngine)
    iceberg: IcebergLake | None = None  # the Iceberg tables (docs/iceberg.md) of tables with iceberg on

    @property
    def name(self) -> str:
        return self.table.name

    def process(self, snapshot: Snapshot) -> list[RunRecord]:
        """Process ``snapshot`` after any earlier unprocessed snapshots; returns what was processed now."""
        snap = snapshot.id
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
            base = base_record(self.store, self.name, pending_snap, processed)
            records.append(self.process_one(Snapshot.parse(pending_snap), base))
            processed = sorted([*processed, pending_snap])
        return records

    def _hand_over_if_big(self, snap: str) -> None:
        """Raises :class:`~snapcdc.cdc.routing.Deferred` when the Spark job takes ``snap`` (and what follows it)."""
        if self.route is None:
            return
        raw_key = self.store.layout.raw_key(self.name, snap, self.table.file)
        if self.route.takes(self.store, self.name, snap, raw_key):
            raise self.route.hand_over(self.store, self.name, snap)

    def process_one(self, snapshot: Snapshot, base: RunRecord | None, scd2: bool = True) -> RunRecord:
        """Diff one snapshot against ``base`` and write its outputs, the run record last.

        ``scd2``: advance the SCD2 history and commit the Iceberg tables (a replay rebuilds both once
        at its end instead)."""
        layout, snap = self.store.layout, snapshot.id
        source_key = layout.raw_key(self.name, snap, self.table.file)
        started = time.perf_counter()
        keys = append_keys(table=self.name, snapshot=snap)
        work = Path(tempfile.mkdtemp(prefix=f"{self.name}-{snap}-", dir=self.work_root()))
        try:
            old_keys: list[str] = []  # the base snapshot's N files (none: a first load)
            if base is not None:
                old_keys = base.keys("snapshot") or [layout.snapshot_key(self.name, base.snapshot)]
            spec = TableSpec.from_config(self.table)
            placement = self._placement(snapshot, base) if self.engine.writes_in_place else None
            try:
                outcome = self.engine.diff(self.store, source_key, old_keys, spec, snapshot.time, work, placement)
            except (InputError, DeleteGuardError) as refusal:
                guarded = isinstance(refusal, DeleteGuardError)
                reason = RefusalReason.DELETE_GUARD if guarded else RefusalReason.MALFORMED_INPUT
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
                if placement is None:
                    record = self._write_outputs(snap, base, source_key, outcome, started)
                else:  # the engine wrote every output and feed in place: they are recorded, not uploaded
                    record = placed_record(self.name, snap, base, source_key, outcome, placement, started)
                    outcome = localized(self.store, record, outcome, work, self.table.outputs.scd2 is not None)
                record = self._write_feeds(record, snapshot, base, outcome, work, scd2, placement is None)
                record = self._migrated(record, outcome, base)
                record = self._sync_catalog(record, outcome)  # after the migration: Glue says what the files say
                if self.iceberg is not None and self.table.iceberg and scd2:  # snapcdc.cdc.iceberg.sync
                    self.iceberg.commit_run(self.name, record, outcome, work)  # both engines
            write_run_record(self.store, record)
            logger.info("snapshot processed", extra={"status": record.status, "stats": record.stats})
            return record
        finally:
            reset_keys(keys)
            shutil.rmtree(work, ignore_errors=True)

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
        files: dict[str, list[OutputFile]] = {}
        if outcome.quarantine_path is not None:
            files["quarantine"] = [self._upload(outcome.quarantine_path, layout.quarantine_key(self.name, snap))]
        assert outcome.snapshot_path is not None  # the function's diff keeps its snapshot: the next run's old side
        files["snapshot"] = [self._upload(outcome.snapshot_path, layout.snapshot_key(self.name, snap))]
        if base is None:
            # The table's first accepted snapshot: the full load that the change stream starts from.
            assert outcome.full_load_path is not None
            outputs["full_load"] = layout.full_load_key(self.name)
            files["full_load"] = [self._upload(outcome.full_load_path, layout.full_load_key(self.name))]
        else:
            outputs["cdc"] = layout.cdc_key(self.name, snap)
            files["cdc"] = [self._upload(outcome.changes_path, layout.cdc_key(self.name, snap))]
        return accepted_record(self.name, snap, base, source_key, outcome, outputs, files, started)

    def _placement(self, at: Snapshot, base: RunRecord | None) -> Placement:
        """The keys of every output and feed of ``at``, for an engine that writes them in place."""
        layout, name, enabled = self.store.layout, self.name, self.table.outputs
        keys = {"snapshot": layout.snapshot_key(name, at.id), "quarantine": layout.quarantine_key(name, at.id)}
        keys["full_load" if base is None else "cdc"] = (
            layout.full_load_key(name) if base is None else layout.cdc_key(name, at.id)
        )
        if enabled.changelog:
            keys["changelog"] = layout.changelog_key(name, at.id)
        if enabled.dms:
            keys["dms"] = layout.dms_load_key(name) if base is None else layout.dms_cdc_key(name, at.id)
        return Placement(keys, commit_version(self.store, name, at.id, base))

    def _upload(self, path: Path, key: str) -> OutputFile:
        """Uploads one file of an output (this engine writes N = 1), listed with its rows and bytes."""
        self.store.upload_file(path, key, PARQUET)
        return OutputFile(key=key, rows=pq.read_metadata(path).num_rows, bytes=path.stat().st_size)

    def _write_feeds(
        self,
        record: RunRecord,
        at: Snapshot,
        base: RunRecord | None,
        outcome: DiffOutcome,
        work: Path,
        scd2: bool,
        write: bool = True,
    ) -> RunRecord:
        """The feeds the table enables (docs/design.md, "Change feeds"), written beside ``cdc/`` before the run
        record, each handed its key and time; the record gets their keys and its commit version. ``write``:
        False when the engine wrote the changelog and DMS feeds in place (SCD2 is still advanced here)."""
        layout, enabled = self.store.layout, self.table.outputs
        version = record.commit_version or commit_version(self.store, self.name, at.id, base)
        outputs, files = dict(record.outputs), dict(record.files)
        first = outcome.full_load_path if base is None else None
        wanted = enabled.enabled if write else (["scd2"] if enabled.scd2 is not None else [])
        changes = pq.ParquetFile(outcome.changes_path).read() if first is None and wanted else None
        # Each feed is imported by the runs that write it, not by every run's import (cold start).
        if write and enabled.changelog:
            from snapcdc.cdc.feeds import changelog

            path = work / "feed-changelog.parquet"
            if first is not None:
                changelog.write_first(first, path, version, at.time)
            else:
                assert changes is not None
                changelog.write_changes(changes, outcome.preimages_path, version, at.time, path)
            key = layout.changelog_key(self.name, at.id)
            files["changelog"] = [self._upload(path, key)]
            outputs["changelog"] = key
        if write and enabled.dms:
            from snapcdc.cdc.feeds import dms

            path = work / "feed-dms.parquet"
            if first is not None:
                key = layout.dms_load_key(self.name)
                dms.write_first(first, path, at.time)
            else:
                assert changes is not None
                key = layout.dms_cdc_key(self.name, at.id)
                dms.write_changes(changes, at.time, path)
            files["dms"] = [self._upload(path, key)]
            outputs["dms"] = key
        history = self.scd2_history()
        if history is not None and scd2:
            history.advance(at, base.snapshot if base else None, first, changes, outcome.schema, work)
        return record.model_copy(update={"outputs": outputs, "files": files, "commit_version": version})

    def scd2_history(self) -> Scd2History | None:
        """The table's SCD2 history (None: the table has none), with its keys from the layout."""
        scd2 = self.table.outputs.scd2
        if scd2 is None:
            return None
        from snapcdc.cdc.feeds.scd2 import Scd2History, Scd2Keys  # imported by the tables that keep one

        layout, name = self.store.layout, self.name
        closed = partial(layout.scd2_closed_key, name)
        keys = Scd2Keys(
            layout.scd2_current_key(name),
            layout.scd2_prefix(name),
            layout.full_load_key(name),
            closed,
            partial(layout.is_scd2_key, name),
        )
        return Scd2History(self.store, self.name, keys, self.table.primary_key, scd2.track_history_columns)

    def _migrated(self, record: RunRecord, outcome: DiffOutcome, base: RunRecord | None) -> RunRecord:
        """Brings the table's earlier files to this snapshot's schema when it changed (:mod:`snapcdc.cdc.migrate`)."""
        if base is None:
            return record
        configured = list(self.table.column_types)
        changes = column_changes(base.columns, outcome.schema, outcome.schema_changes, configured)
        if not reshaping(changes):
            return record  # the schema of the base run record: nothing to list or read
        from snapcdc.cdc.migrate import migrate_table  # imported by the runs that migrate (cold start)

        rewritten = migrate_table(
            self.store,
            self.name,
            outcome.schema,
            record.snapshot,
            primary_key=self.table.primary_key,
            date_field=self.table.date_field,
            skip=record.all_keys(),
            work_dir=self.work_root(),
        )
        migration = SchemaMigration(columns=reshaping(changes), rewritten=rewritten)
        logger.info("schema migrated", extra={"columns": migration.columns, "rewritten": len(rewritten)})
        return record.model_copy(update={"schema_changes": changes, "migration": migration})

    def _sync_catalog(self, record: RunRecord, outcome: DiffOutcome) -> RunRecord:
        """The catalog follows the data: the table's Glue tables say the schema just written."""
        if self.catalog is None:
            return record
        sync = self.catalog.sync_table(self.name, outcome.schema, self.table.primary_key, self.table.outputs.enabled)
        changes = [CatalogChange.model_validate(change.as_dict()) for change in sync.changes]
        if changes:
            logger.info("glue tables changed", extra={"catalog_changes": [c.model_dump() for c in changes]})
        return record.model_copy(update={"catalog_changes": changes})

    def work_root(self) -> Path:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        return self.work_dir
