"""A run becomes an Iceberg commit: an accepted snapshot committed to ``<table>`` and ``<table>_changes``.

The CDC stage calls :meth:`IcebergLake.commit_run` for each accepted snapshot after its outputs are
written and before its run record (the run record's presence still means done), on both engines.
Per Iceberg table:

1. the table's ledger is read (:func:`.commit.check_order`): already committed, nothing to do;
   behind, the missing accepted snapshots are committed first from the lake (:meth:`catch_up`);
2. its retention properties follow the config (:func:`.maintenance.apply_retention`), its schema the
   snapshot's columns (:mod:`.schema`), read from a file's footer;
3. one data file per file of rows (:func:`.files.write_part`) under ``iceberg/<name>/data/``, by
   :meth:`IcebergLake.write_parts`: here in this process, in the Glue job one Spark task per file
   (:class:`snapcdc.spark.iceberg.SparkIcebergLake`); then :func:`.commit.commit_files`, a
   metadata-only commit of the files written:
   - ``<table>``: the snapshot's rows replace the table's files (``overwrite``); an empty change set
     with an unchanged schema commits no file (an ``append`` of nothing, carrying the summary), so
     the unchanged state costs no data bytes;
   - ``<table>_changes``: the change set's rows appended (the first snapshot's: the full load, as
     inserts ``I`` at the snapshot's time), an empty change set an append of nothing.

Replay (:meth:`rebuild`) drops both tables from the catalog (their files stay: never rewritten) and
commits every accepted snapshot again, in order, from the files its run record lists.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.schema import Schema
from pyiceberg.table import Table

from snapcdc.cdc.iceberg import files as datafiles
from snapcdc.cdc.iceberg.commit import BehindError, CommitOutcome, Mode, check_order, commit_files
from snapcdc.cdc.iceberg.maintenance import Retention, apply_retention
from snapcdc.cdc.iceberg.names import changes_table, current_table
from snapcdc.cdc.iceberg.tables import CHANGE_COLUMNS, TableShape, evolve, load, load_or_create, shape
from snapcdc.config import PipelineConfig
from snapcdc.engine.spec import HASH_COLUMNS
from snapcdc.lake.ledger import accepted_records
from snapcdc.lake.records import RunRecord
from snapcdc.lake.snapshot import Snapshot
from snapcdc.lake.store import S3Store

if TYPE_CHECKING:
    from snapcdc.engine import DiffOutcome

logger = logging.getLogger(__name__)  # stdlib logging: the Glue job imports this module too (no Powertools)

# One file of rows: a local Parquet file (the run's own output), or a key in the bucket.
RowsFile = Path | str


@dataclass(frozen=True)
class SnapshotRows:
    """One accepted snapshot as the Iceberg tables need it: its files of rows, and its counts."""

    snapshot: str
    base: str | None  # the previous accepted snapshot (None: the first)
    state: tuple[RowsFile, ...]  # the snapshot's rows (the engine's snapshot files; hash columns left out)
    changes: tuple[RowsFile, ...]  # the change set (cdc/ files), or the full load for the first snapshot
    counts: dict[str, int]

    @property
    def changed(self) -> bool:
        return self.base is None or any(self.counts.get(k, 0) for k in ("inserts", "updates", "deletes"))


@dataclass(frozen=True)
class Prepared:
    table: Table  # as loaded (and evolved): the commit's first attempt starts from it
    schema: Schema  # the table's schema after evolving (the data files are written in it)
    schema_changed: bool


@dataclass(frozen=True)
class IcebergLake:
    catalog: Catalog  # pyiceberg's Glue catalog (snapcdc.cdc.iceberg.catalog.glue_catalog)
    store: S3Store
    database: str
    retention: Retention = field(default_factory=Retention)

    def identifier(self, name: str) -> str:
        return f"{self.database}.{name}"

    # -- what differs between the engines ---------------------------------------------------------
    def run_rows(self, record: RunRecord, outcome: DiffOutcome) -> SnapshotRows:
        """The rows of the run just done: here, the files the engine wrote locally (not read back)."""
        changes = outcome.full_load_path or outcome.changes_path
        assert outcome.snapshot_path is not None  # the function's diff keeps its snapshot
        return SnapshotRows(
            record.snapshot, record.base_snapshot, (outcome.snapshot_path,), (changes,), dict(record.stats)
        )

    def write_parts(self, jobs: Sequence[datafiles.PartJob], work: Path) -> list[datafiles.PartFile]:
        """The data files of ``jobs``, written and uploaded one after the other in this process."""
        written = (datafiles.write_part(self.store, job, work) for job in jobs)
        return [part for part in written if part is not None]

    # -- one snapshot ----------------------------------------------------------------------------
    def commit_run(self, table: str, record: RunRecord, outcome: DiffOutcome, work: Path) -> list[CommitOutcome]:
        """The CDC stage's hook, both engines: the accepted run ``record`` committed to both tables."""
        return self.commit_snapshot(table, self.run_rows(record, outcome), work)

    def commit_snapshot(self, table: str, rows: SnapshotRows, work: Path) -> list[CommitOutcome]:
        """Commits ``rows`` to both tables (catching up missing snapshots first); exactly once each."""
        outcomes = []
        for name, commit in ((changes_table(table), self._commit_changes), (current_table(table), self._commit_state)):
            try:
                outcomes.append(commit(name, rows, work))
            except BehindError as behind:
                self.catch_up(table, name, behind.newest, rows.snapshot, work)
                outcomes.append(commit(name, rows, work))
        for outcome in outcomes:
            logger.info("iceberg commit", extra={"iceberg": outcome.__dict__})
        return outcomes

    def _prepared(self, name: str, rows: SnapshotRows, table_shape: TableShape) -> Prepared | None:
        """The table ready for ``rows``' commit (created, its schema evolved); None: already committed."""
        existing = load(self.catalog, self.identifier(name))
        if existing is not None and check_order(existing, rows.snapshot, rows.base):
            return None
        if existing is not None:
            apply_retention(existing, self.retention)  # the config's iceberg.retention_days, if it changed
        table = existing or load_or_create(self.catalog, self.store, self.identifier(name), table_shape, self.retention)
        schema, changes = evolve(table, table_shape)
        return Prepared(table, schema, bool(changes))

    def _already(self, name: str, rows: SnapshotRows) -> CommitOutcome:
        return CommitOutcome(self.identifier(name), rows.snapshot, None, already=True)

    def _commit_state(self, name: str, rows: SnapshotRows, work: Path) -> CommitOutcome:
        table_shape = shape(self._schema(rows.state))
        prepared = self._prepared(name, rows, table_shape)
        if prepared is None:
            return self._already(name, rows)
        if rows.changed or prepared.schema_changed:
            jobs = self._jobs(name, rows, rows.state, table_shape, prepared, drop=HASH_COLUMNS)
            return self._write_and_commit(name, rows, prepared, jobs, "replace", work)
        return self._write_and_commit(name, rows, prepared, [], "append", work)

    def _commit_changes(self, name: str, rows: SnapshotRows, work: Path) -> CommitOutcome:
        first = rows.base is None
        source_schema = self._schema(rows.changes)
        if first:
            source_schema = datafiles.with_change_columns(source_schema)
        table_shape = shape(source_schema, extra=CHANGE_COLUMNS)
        prepared = self._prepared(name, rows, table_shape)
        if prepared is None:
            return self._already(name, rows)
        at = Snapshot.parse(rows.snapshot).time if first else None
        jobs = self._jobs(name, rows, rows.changes, table_shape, prepared, inserts_at=at)
        return self._write_and_commit(name, rows, prepared, jobs, "append", work)

    def _schema(self, files: Sequence[RowsFile]) -> pa.Schema:
        """The columns of a snapshot's files (its first file's footer: the run wrote them in one schema)."""
        if not files:
            raise ValueError("a snapshot's rows are in at least one file (an empty output is one empty file)")
        return datafiles.source_schema(self.store, files[0])

    def _jobs(
        self,
        name: str,
        rows: SnapshotRows,
        files: Sequence[RowsFile],
        table_shape: TableShape,
        prepared: Prepared,
        drop: Sequence[str] = (),
        inserts_at: datetime | None = None,
    ) -> list[datafiles.PartJob]:
        """One data file per file of rows, each under a fresh name."""
        target = datafiles.arrow_schema(prepared.schema)
        return [
            datafiles.PartJob(
                source,
                self.store.layout.iceberg_data_key(name, datafiles.new_file_name(rows.snapshot)),
                table_shape.names,
                target,
                drop=tuple(drop),
                inserts_at=inserts_at,
            )
            for source in files
        ]

    def _write_and_commit(
        self,
        name: str,
        rows: SnapshotRows,
        prepared: Prepared,
        jobs: Sequence[datafiles.PartJob],
        mode: Mode,
        work: Path,
    ) -> CommitOutcome:
        parts = self.write_parts(jobs, work) if jobs else []
        return commit_files(
            self.catalog,
            self.store,
            self.identifier(name),
            rows.snapshot,
            rows.base,
            parts,
            rows.counts,
            mode,
            loaded=prepared.table,
        )

    # -- catching up, rebuilding -------------------------------------------------------------------
    def catch_up(self, table: str, name: str, newest: str | None, upto: str, work: Path) -> None:
        """Commits to ``name`` the accepted snapshots after ``newest`` and before ``upto``, from the lake."""
        records = [r for r in accepted_records(self.store, table) if (newest is None or r.snapshot > newest)]
        for rows in self.lake_rows([r for r in records if r.snapshot < upto], previous=newest):
            commit = self._commit_changes if name == changes_table(table) else self._commit_state
            commit(name, rows, work)

    def lake_rows(self, records: Sequence[RunRecord], previous: str | None) -> Iterator[SnapshotRows]:
        """Each accepted record's rows: the ``snapshots/`` and ``cdc/`` (or ``full-load/``) files it lists."""
        for record in records:
            base = record.base_snapshot if record.base_snapshot is not None else previous
            yield record_rows(record, self.store, base)
            previous = record.snapshot

    def rebuild(self, table: str, work_dir: Path | None = None) -> list[CommitOutcome]:
        """Replay: both tables dropped from the catalog and committed again from the accepted snapshots."""
        for name in (changes_table(table), current_table(table)):
            with contextlib.suppress(NoSuchTableError):
                self.catalog.drop_table(self.identifier(name))
        work = Path(tempfile.mkdtemp(prefix=f"{table}-iceberg-", dir=work_dir))
        outcomes: list[CommitOutcome] = []
        try:
            records = accepted_records(self.store, table)
            for rows in self.lake_rows(records, previous=None):
                outcomes.extend(self.commit_snapshot(table, rows, work))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return outcomes


def record_rows(record: RunRecord, store: S3Store, base: str | None) -> SnapshotRows:
    """An accepted run's rows in the bucket: every file its record lists (``keys``, N per output)."""
    layout = store.layout
    state = record.keys("snapshot") or [layout.snapshot_key(record.table, record.snapshot)]
    changes = record.keys("cdc") or record.keys("full_load") or [layout.full_load_key(record.table)]
    return SnapshotRows(record.snapshot, base, tuple(state), tuple(changes), dict(record.stats))


def iceberg_lake(config: PipelineConfig, store: S3Store, glue_client: Any, database: str | None) -> IcebergLake | None:
    """The Iceberg tables' keeper for a pipeline: None when no table enables Iceberg or no database is set."""
    if database is None or not any(t.iceberg for t in config.tables):
        return None
    from snapcdc.cdc.iceberg.catalog import glue_catalog

    return IcebergLake(glue_catalog(glue_client), store, database, Retention(config.iceberg.retention_days))
