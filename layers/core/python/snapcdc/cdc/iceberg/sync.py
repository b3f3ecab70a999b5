"""The CDC stage's side of the Iceberg tables: commit an accepted snapshot to ``<table>`` and ``<table>_changes``.

Called for each accepted snapshot after its outputs are written and before its run record (the run
record's presence still means done): :meth:`IcebergLake.commit_snapshot`. Per Iceberg table:

1. the table's ledger is read (:func:`.commit.check_order`): already committed, nothing to do;
   behind, the missing accepted snapshots are committed first from the lake (:meth:`catch_up`);
2. its schema follows the snapshot's columns (:mod:`.schema`);
3. the rows are written as a new data file under ``iceberg/<name>/data/``, uploaded, then committed
   by :func:`.commit.commit_files` (a metadata-only commit of the listed files):
   - ``<table>``: the snapshot's rows replace the table's files (``overwrite``); an empty change set
     with an unchanged schema commits no file (an ``append`` of nothing, carrying the summary), so
     the unchanged state costs no data bytes;
   - ``<table>_changes``: the change set's rows appended (the first snapshot's: the full load, as
     inserts ``I`` at the snapshot's time), an empty change set an append of nothing.

Replay (:meth:`rebuild`) drops both tables from the catalog (their files stay: never rewritten) and
commits every accepted snapshot again, in order, from ``snapshots/`` and ``cdc/``.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.schema import Schema
from pyiceberg.table import Table

from snapcdc.cdc.iceberg import files as datafiles
from snapcdc.cdc.iceberg.commit import BehindError, CommitOutcome, Mode, check_order, commit_files
from snapcdc.cdc.iceberg.maintenance import Retention
from snapcdc.cdc.iceberg.names import CHANGES_SUFFIX, changes_table, current_table
from snapcdc.cdc.iceberg.tables import CHANGE_COLUMNS, TableShape, evolve, load, load_or_create, shape
from snapcdc.config import PipelineConfig
from snapcdc.engine.spec import CDC_OPERATION, CDC_TIMESTAMP, HASH_COLUMNS
from snapcdc.lake.ledger import accepted_records
from snapcdc.lake.output_files import download_output
from snapcdc.lake.records import RunRecord
from snapcdc.lake.snapshot import Snapshot
from snapcdc.lake.store import S3Store
from snapcdc.observability import logger


@dataclass(frozen=True)
class SnapshotRows:
    """One accepted snapshot as the Iceberg tables need it: local Parquet files and counts."""

    snapshot: str
    base: str | None  # the previous accepted snapshot (None: the first)
    state: Path  # the snapshot's rows (the engine's snapshot file; its hash columns are left out)
    changes: Path  # the change set (a cdc/ file), or the full load for the first snapshot
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

    @staticmethod
    def rows(record: RunRecord, state: Path, changes: Path) -> SnapshotRows:
        """The rows of an accepted run: its snapshot file and its change file (the full load, first)."""
        return SnapshotRows(record.snapshot, record.base_snapshot, state, changes, dict(record.stats))

    # -- one snapshot ----------------------------------------------------------------------------
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
        table = existing or load_or_create(self.catalog, self.store, self.identifier(name), table_shape, self.retention)
        schema, changes = evolve(table, table_shape)
        return Prepared(table, schema, bool(changes))

    def _already(self, name: str, rows: SnapshotRows) -> CommitOutcome:
        return CommitOutcome(self.identifier(name), rows.snapshot, None, already=True)

    def _commit_state(self, name: str, rows: SnapshotRows, work: Path) -> CommitOutcome:
        table_shape = shape(pq.read_schema(rows.state))
        prepared = self._prepared(name, rows, table_shape)
        if prepared is None:
            return self._already(name, rows)
        if rows.changed or prepared.schema_changed:
            batches = datafiles.parquet_batches(rows.state, drop=HASH_COLUMNS)
            return self._write_and_commit(name, rows, table_shape, prepared, batches, "replace", work)
        return self._write_and_commit(name, rows, table_shape, prepared, [], "append", work)

    def _commit_changes(self, name: str, rows: SnapshotRows, work: Path) -> CommitOutcome:
        first = rows.base is None
        source_schema = pq.read_schema(rows.changes)
        if first:
            source_schema = _with_change_columns(source_schema)
        table_shape = shape(source_schema, extra=CHANGE_COLUMNS)
        prepared = self._prepared(name, rows, table_shape)
        if prepared is None:
            return self._already(name, rows)
        batches: Iterable[pa.RecordBatch | pa.Table] = datafiles.parquet_batches(rows.changes)
        if first:
            batches = _as_inserts(batches, Snapshot.parse(rows.snapshot).time)
        return self._write_and_commit(name, rows, table_shape, prepared, batches, "append", work)

    def _write_and_commit(
        self,
        name: str,
        rows: SnapshotRows,
        table_shape: TableShape,
        prepared: Prepared,
        batches: Iterable[pa.RecordBatch | pa.Table],
        mode: Mode,
        work: Path,
    ) -> CommitOutcome:
        parts: list[datafiles.PartFile] = []
        local = work / f"iceberg-{name}.parquet"
        written = datafiles.write_rows(batches, table_shape.names, prepared.schema, local)
        if written:
            key = self.store.layout.iceberg_data_key(name, datafiles.new_file_name(rows.snapshot))
            self.store.upload_file(local, key, datafiles.PARQUET)
            parts.append(datafiles.PartFile(key, written, local.stat().st_size))
        local.unlink(missing_ok=True)
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

    # -- the Glue job's driver: its tasks wrote the part files ---------------------------------------
    def prepare(self, name: str, rows_schema: pa.Schema, snap: str, base: str | None) -> Prepared | None:
        """Before the tasks write: the Iceberg table ``name`` created or evolved for ``rows_schema``
        (the part files' rows, pipeline column names); None: ``snap`` is already committed. The tasks
        write with :func:`.files.arrow_schema` of ``.schema`` and :func:`.files.conform_batch`."""
        extra = CHANGE_COLUMNS if name.endswith(CHANGES_SUFFIX) else ()
        rows = SnapshotRows(snap, base, Path(), Path(), {})
        return self._prepared(name, rows, shape(rows_schema, extra=extra))

    def commit_parts(
        self, name: str, snap: str, base: str | None, parts: Sequence[datafiles.PartFile], counts: dict[str, int]
    ) -> CommitOutcome:
        """The driver's metadata-only commit of the part files its tasks wrote (listed in the run
        record): ``<table>`` replaced by them, ``<table>_changes`` appended; exactly once, in order."""
        mode: Mode = "append" if name.endswith(CHANGES_SUFFIX) else "replace"
        return commit_files(self.catalog, self.store, self.identifier(name), snap, base, parts, counts, mode)

    # -- catching up, rebuilding -------------------------------------------------------------------
    def catch_up(self, table: str, name: str, newest: str | None, upto: str, work: Path) -> None:
        """Commits to ``name`` the accepted snapshots after ``newest`` and before ``upto``, from the lake."""
        records = [r for r in accepted_records(self.store, table) if (newest is None or r.snapshot > newest)]
        for rows in self.lake_rows([r for r in records if r.snapshot < upto], work, previous=newest):
            commit = self._commit_changes if name == changes_table(table) else self._commit_state
            commit(name, rows, work)

    def lake_rows(self, records: Sequence[RunRecord], work: Path, previous: str | None) -> Iterator[SnapshotRows]:
        """Each accepted record's rows, downloaded from ``snapshots/`` and ``cdc/`` (or ``full-load/``)."""
        layout = self.store.layout
        for record in records:
            base = record.base_snapshot if record.base_snapshot is not None else previous
            state_keys = record.keys("snapshot") or [layout.snapshot_key(record.table, record.snapshot)]
            changes_keys = record.keys("cdc") or record.keys("full_load") or [layout.full_load_key(record.table)]
            # An output is N files: each joined into one local file, a row group at a time.
            state = download_output(self.store, state_keys, work / "iceberg-state.parquet", record).path
            changes = download_output(self.store, changes_keys, work / "iceberg-changes.parquet", record).path
            yield SnapshotRows(record.snapshot, base, state, changes, dict(record.stats))
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
            for rows in self.lake_rows(records, work, previous=None):
                outcomes.extend(self.commit_snapshot(table, rows, work))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return outcomes


def _with_change_columns(schema: pa.Schema) -> pa.Schema:
    return schema.append(pa.field(CDC_OPERATION, pa.string())).append(
        pa.field(CDC_TIMESTAMP, pa.timestamp("us", tz="UTC"))
    )


def _as_inserts(batches: Iterable[pa.RecordBatch | pa.Table], at: datetime) -> Iterator[pa.Table]:
    """The full load's rows as the change stream's first change set: inserts at the snapshot's time."""
    for batch in batches:
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        count = table.num_rows
        table = table.append_column(CDC_OPERATION, pa.repeat(pa.scalar("I", pa.string()), count))
        yield table.append_column(CDC_TIMESTAMP, pa.repeat(pa.scalar(at, pa.timestamp("us", tz="UTC")), count))


def iceberg_lake(config: PipelineConfig, store: S3Store, glue_client: Any, database: str | None) -> IcebergLake | None:
    """The Iceberg tables' keeper for a pipeline: None when no table enables Iceberg or no database is set."""
    if database is None or not any(t.iceberg for t in config.tables):
        return None
    from snapcdc.cdc.iceberg.catalog import glue_catalog

    return IcebergLake(glue_catalog(glue_client), store, database, Retention(config.iceberg.retention_days))
