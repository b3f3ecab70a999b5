"""The engine's one output writer: every file either engine writes goes through here, so which files a
diff has (the snapshot, the change set, a first snapshot's full load, the quarantine, the pre-images),
their Parquet options (codec per column, dictionary encoding, statistics placement, row groups:
:mod:`.parquet_output`) and what a first snapshot writes beside its snapshot are decided once.

The Lambda engine (:func:`snapcdc.engine.diff_files`) calls it once per run: one file per output
(N = 1). The Spark engine calls it once per partition, inside the task (:mod:`snapcdc.spark.diff`):
the same files, N part files per output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from snapcdc.engine.cdc_columns import with_cdc
from snapcdc.engine.differ import Diffed
from snapcdc.engine.hash_columns import data_only
from snapcdc.engine.parquet_output import write_parquet
from snapcdc.engine.sinks import FileCopy, ParquetSnapshot
from snapcdc.engine.spec import TableSpec, WrittenFile

# The outputs of a diff, by name (a run record lists each one's files under these names).
SNAPSHOT, CHANGES, FULL_LOAD, QUARANTINE, PREIMAGES = "snapshot", "changes", "full_load", "quarantine", "preimages"
OUTPUTS = (SNAPSHOT, CHANGES, FULL_LOAD, QUARANTINE, PREIMAGES)


@dataclass(frozen=True)
class OutputFiles:
    """Where one diff writes its outputs (local paths). ``first``: the table's first snapshot (a full
    load and a change set of inserts copied from the snapshot's row groups). ``snapshot``: whether the
    accepted snapshot is written (and a first one's full load, its data); without it, only the change
    set, the quarantine and the pre-images (``snapcdc diff`` keeps no snapshot unless asked)."""

    folder: Path
    first: bool
    suffix: str = ""  # e.g. "-00003" for a part file
    snapshot: bool = True

    def path(self, name: str) -> Path:
        return self.folder / f"{name}{self.suffix}.parquet"

    @property
    def streamed(self) -> tuple[str, ...]:
        """The outputs the snapshot sink writes from its row groups: the snapshot and a first one's full
        load (when the snapshot is kept), and a first one's change set."""
        kept = (SNAPSHOT, FULL_LOAD) if self.first else (SNAPSHOT,)
        return (*(kept if self.snapshot else ()), *((CHANGES,) if self.first else ()))


def first_load_copies(full_load: Path | None, changes: Path, inserted_at: datetime) -> list[FileCopy]:
    """A first snapshot's data columns (no hashes) as the user-facing full load (unless ``full_load``
    is None), and as its change set (every row inserted at ``inserted_at``)."""
    change_set = FileCopy(changes, lambda rows: with_cdc(data_only(rows), "I", inserted_at))
    return [FileCopy(full_load, data_only), change_set] if full_load is not None else [change_set]


def snapshot_sink(files: OutputFiles, spec: TableSpec, observed_at: datetime) -> Callable[[pa.Schema], ParquetSnapshot]:
    """The sink a diff writes its snapshot to (a first snapshot's full load and change set beside it)."""
    full_load = files.path(FULL_LOAD) if files.snapshot else None
    copies = first_load_copies(full_load, files.path(CHANGES), observed_at) if files.first else []
    snapshot = files.path(SNAPSHOT) if files.snapshot else None

    def sink(schema: pa.Schema) -> ParquetSnapshot:
        return ParquetSnapshot(snapshot, schema, spec, copies=copies)

    return sink


def write_table(table: pa.Table, path: Path) -> WrittenFile:
    """``table`` as one Parquet file, with the engine's options for a user-facing file."""
    write_parquet(table, path)
    return WrittenFile(str(path), table.num_rows, path.stat().st_size)


def finish_outputs(diffed: Diffed[ParquetSnapshot], files: OutputFiles) -> dict[str, WrittenFile]:
    """Writes the change set (a later snapshot's: a first one's was copied from the snapshot), the
    quarantine and the pre-images while the snapshot's writers complete it; returns every output
    written, by name. On any error the files are removed."""
    written: dict[str, WrittenFile] = {}
    try:
        try:
            if not files.first:
                written[CHANGES] = write_table(diffed.changes, files.path(CHANGES))
            if diffed.quarantine is not None:
                written[QUARANTINE] = write_table(diffed.quarantine, files.path(QUARANTINE))
            if diffed.preimages is not None:
                written[PREIMAGES] = write_table(diffed.preimages, files.path(PREIMAGES))
        finally:
            diffed.sink.close()
    except BaseException:
        remove(files)
        raise
    kept = diffed.stats.rows_snapshot
    for name in files.streamed:
        path = files.path(name)
        written[name] = WrittenFile(str(path), kept, path.stat().st_size)
    return {name: written[name] for name in OUTPUTS if name in written}


def remove(files: OutputFiles) -> None:
    """Removes whatever a diff into ``files`` wrote."""
    for name in OUTPUTS:
        files.path(name).unlink(missing_ok=True)


__all__ = [
    "CHANGES",
    "FULL_LOAD",
    "OUTPUTS",
    "PREIMAGES",
    "QUARANTINE",
    "SNAPSHOT",
    "OutputFiles",
    "WrittenFile",
    "finish_outputs",
    "first_load_copies",
    "remove",
    "snapshot_sink",
    "write_table",
]
