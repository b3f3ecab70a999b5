"""The engine's two entry points: :func:`diff_tables` (in-memory Arrow tables, nothing written) and
:func:`diff_files` (a CSV or Parquet file against the previous snapshot file, outputs written to a
folder), and what they do with files: choosing the new side's path, accepting a plain old file,
writing the outputs."""

from __future__ import annotations

import contextlib
import gc
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from snapcdc.engine import writer
from snapcdc.engine.cdc_columns import utc
from snapcdc.engine.csv_input import TypedReadFailed, is_parquet, read_csv_strings
from snapcdc.engine.csv_quirks import csv_quirks
from snapcdc.engine.differ import Diffed, S, run_diff
from snapcdc.engine.hash_columns import data_only, has_cached_hashes
from snapcdc.engine.new_side import NewInput, input_from_table, streamed_input
from snapcdc.engine.old_side import OldSnapshot
from snapcdc.engine.sinks import MemorySnapshot, ScratchSnapshot
from snapcdc.engine.spec import (
    HASH_METADATA,
    NULL_KEY,
    QUARANTINE_REASON,
    DiffOutcome,
    DiffResult,
    InputError,
    TableSpec,
)


@dataclass(frozen=True)
class _Labels:
    """How the new and the old input are named in messages."""

    new: str
    old: str


def _diff_in_memory(
    old: OldSnapshot | None, new: NewInput, spec: TableSpec, observed_at: datetime, old_name: str
) -> DiffResult:
    diffed = run_diff(old, new, spec, observed_at, MemorySnapshot, old_name, keep_first_inserts=True)
    return DiffResult(
        diffed.changes,
        diffed.sink.table,
        diffed.quarantine,
        diffed.stats,
        new.schema,
        new.schema_changes,
        diffed.preimages,
    )


def diff_tables(
    old: pa.Table | None,
    new: pa.Table,
    spec: TableSpec,
    observed_at: datetime,
    *,
    new_name: str = "<new>",
    old_name: str = "<old>",
) -> DiffResult:
    """Diff ``new`` (text columns as read from a CSV, or typed columns) against ``old``.

    ``old`` is a previous accepted snapshot (``DiffResult.snapshot``, hashes reused) or plain data
    (accepted first, as a first snapshot would be: its bad rows are left out).
    """
    old_side = None
    if old is not None:
        if HASH_METADATA in (old.schema.metadata or {}):
            old_side = OldSnapshot.from_table(old, spec)
        else:
            first = _diff_in_memory(None, input_from_table(old, spec, None, old_name), spec, observed_at, old_name)
            old_side = OldSnapshot.from_table(first.snapshot, spec)
    new_input = input_from_table(new, spec, old_side.schema if old_side is not None else None, new_name)
    return _diff_in_memory(old_side, new_input, spec, observed_at, old_name)


def _read_parquet_data(path: Path, name: str) -> pa.Table:
    """The file itself: no hive partition discovery (a ``snapshot=.../`` folder adds no column)."""
    try:
        table = pq.ParquetFile(path).read()
    except (pa.ArrowException, OSError) as error:
        raise InputError(name, None, f"not a readable Parquet file: {error}") from None
    return data_only(table)


def _diff_file(
    old: OldSnapshot | None,
    path: Path,
    spec: TableSpec,
    observed_at: datetime,
    sink_for: Callable[[pa.Schema], S],
    labels: _Labels,
    find_duplicates: bool = True,
) -> Diffed[S]:
    """Diff a CSV (streamed; the exact path when the fast one stops) or Parquet file."""
    previous = old.schema if old is not None else None

    def run(new: NewInput) -> Diffed[S]:
        return run_diff(
            old, new, spec, observed_at, sink_for, labels.old, keep_first_inserts=False, find_duplicates=find_duplicates
        )

    if not is_parquet(path):
        try:
            return run(streamed_input(path, labels.new, spec, previous))
        except TypedReadFailed:
            pass
        table = read_csv_strings(path, labels.new, spec.delimiter)
    else:
        table = _read_parquet_data(path, labels.new)
    return run(input_from_table(table, spec, previous, labels.new))


def _joined_parts(paths: list[Path], work: Path) -> Path:
    """A snapshot stored as N part files (the Spark engine's), as one local file: row group by row group."""
    if len(paths) == 1:
        return paths[0]
    joined = work / "old-joined.parquet"
    schema = pq.read_schema(paths[0])
    with pq.ParquetWriter(joined, schema, compression="none") as out:
        for path in paths:
            part = pq.ParquetFile(path)
            for group in range(part.num_row_groups):
                out.write_table(part.read_row_group(group).cast(schema))
    return joined


def _load_old(path: Path, spec: TableSpec, observed_at: datetime, name: str, work: Path) -> OldSnapshot:
    if is_parquet(path):
        try:
            stored = pq.ParquetFile(path).schema_arrow
        except (pa.ArrowException, OSError) as error:
            raise InputError(name, None, f"not a readable Parquet file: {error}") from None
        if has_cached_hashes(stored):
            return OldSnapshot.from_parquet(path, spec, name)

    # Plain data (a CSV, a foreign Parquet): accepted as a first snapshot would be, its full rows into
    # a scratch file in ``work`` (memory stays bounded).
    def accept(find_duplicates: bool) -> Diffed[ScratchSnapshot]:
        def scratch(schema: pa.Schema) -> ScratchSnapshot:
            return ScratchSnapshot(work / "old-snapshot.arrow", spec, schema)

        return _diff_file(None, path, spec, observed_at, scratch, _Labels(name, name), find_duplicates)

    # Keys occurring twice are left in the scratch file and set aside when the old side's hash table
    # is built: without duplicates, one hash table over the keys instead of two. A row quarantined for
    # a value still makes its key a duplicate, and it is not in the file: then the check runs here.
    accepted = accept(find_duplicates=False)
    quarantine = accepted.quarantine
    if quarantine is not None and pc.any(pc.not_equal(quarantine[QUARANTINE_REASON], NULL_KEY)).as_py():
        del accepted  # its keys and hashes, before the second acceptance holds its own
        accepted = accept(find_duplicates=True)
    pa.default_memory_pool().release_unused()  # give the acceptance's buffers back before the diff
    return accepted.sink.old_side()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cycle collector off for the diff (on again after, if it was on). A diff allocates tens
    of thousands of small objects (Arrow and numpy wrappers, futures) and makes no cycles worth
    collecting; each collection stops every thread at the GIL, about 90 of them at 5M rows."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


@_collector_paused()
def diff_files(
    *,
    old: Path | list[Path] | None,
    new: Path,
    spec: TableSpec,
    observed_at: datetime,
    out_dir: Path,
    new_name: str | None = None,
    old_name: str | None = None,
    keep_snapshot: bool = True,
) -> DiffOutcome:
    """Diff two local files (CSV or Parquet) and write the outputs into ``out_dir``. ``old`` may be a
    snapshot's N part files (the Spark engine's), in order.

    Outputs: ``changes.parquet``, ``snapshot.parquet``, ``full_load.parquet`` (first snapshot only),
    ``quarantine.parquet`` (when rows were rejected), ``preimages.parquet`` (``spec.with_preimages``
    and an old side: the old rows of the updated keys, in the order of the change set's U rows).
    ``keep_snapshot=False``: no ``snapshot.parquet`` nor ``full_load.parquet`` (the change set is the
    same), as ``snapcdc diff`` runs it when no ``--snapshot-out`` asks for the snapshot.
    On InputError or DeleteGuardError nothing is written.
    """
    started = time.perf_counter()
    new_label = new_name or str(new)
    olds = [Path(p) for p in old] if isinstance(old, list) else [Path(old)] if old is not None else []
    if len(olds) == 1 and olds[0].is_dir():  # a folder of part files
        olds = sorted(olds[0].glob("*.parquet"))
    old_label = old_name or (str(olds[0]) if olds else "<none>")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".work-") as work:
        old_path = _joined_parts(olds, Path(work)) if olds else None
        old_side = _load_old(old_path, spec, observed_at, old_label, Path(work)) if old_path is not None else None
        files = writer.OutputFiles(out_dir, first=old_side is None, snapshot=keep_snapshot)
        return _diff_into(old_side, Path(new), spec, observed_at, files, _Labels(new_label, old_label), started)


def _diff_into(
    old_side: OldSnapshot | None,
    new: Path,
    spec: TableSpec,
    observed_at: datetime,
    files: writer.OutputFiles,
    labels: _Labels,
    started: float,
) -> DiffOutcome:
    # A first snapshot's data, without the hash columns, and its change set (every row inserted) are
    # written beside the snapshot; later ones' change set is small and written at the end.
    sink = writer.snapshot_sink(files, spec, utc(observed_at))
    try:
        diffed = _diff_file(old_side, Path(new), spec, observed_at, sink, labels)
    except BaseException:
        writer.remove(files)
        raise
    written = writer.finish_outputs(diffed, files)

    def path(name: str) -> Path | None:
        return Path(written[name].location) if name in written else None

    return DiffOutcome(
        stats=diffed.stats,
        changes_path=files.path(writer.CHANGES),
        snapshot_path=path(writer.SNAPSHOT),
        full_load_path=path(writer.FULL_LOAD),
        quarantine_path=path(writer.QUARANTINE),
        schema=diffed.schema,
        schema_changes=diffed.schema_changes,
        seconds=time.perf_counter() - started,
        preimages_path=path(writer.PREIMAGES),
        files={name: [file] for name, file in written.items()},
        input_notes=csv_quirks(new),
    )
