"""What the CDC stage does with the outcome of an engine that writes in place (the Spark job,
:class:`~snapcdc.cdc.engines.Placement`): the run record lists the files the engine wrote, with their
rows and bytes (``outputs`` keeps each output's first key, as records before ``files`` did); and the
few steps still done on the driver (SCD2) get local copies of the files they read. The accepted run's
record itself (:func:`accepted_record`) is built here for both engines."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from snapcdc.cdc.engines import Placement
from snapcdc.engine import DiffOutcome
from snapcdc.lake.output_files import download_output
from snapcdc.lake.records import OutputFile, RunRecord
from snapcdc.lake.store import S3Store


def placed_record(
    table: str,
    snap: str,
    base: RunRecord | None,
    source_key: str,
    outcome: DiffOutcome,
    placement: Placement,
    started: float,
) -> RunRecord:
    """The accepted run's record: every file of every output the engine wrote (located by key)."""
    unknown = set(outcome.files) - set(placement.keys)
    if unknown:
        raise ValueError(f"the engine wrote outputs it was not given keys for: {sorted(unknown)}")
    files = {
        name: [OutputFile(key=f.location, rows=f.rows, bytes=f.bytes) for f in found]
        for name, found in outcome.files.items()
        if found
    }
    outputs: dict[str, str | None] = {"snapshot": None, "quarantine": None, "cdc": None, "full_load": None}
    outputs.update({name: found[0].key for name, found in files.items()})
    return accepted_record(
        table, snap, base, source_key, outcome, outputs, files, started, commit_version=placement.commit_version
    )


def accepted_record(
    table: str,
    snap: str,
    base: RunRecord | None,
    source_key: str,
    outcome: DiffOutcome,
    outputs: dict[str, str | None],
    files: dict[str, list[OutputFile]],
    started: float,
    commit_version: int | None = None,
) -> RunRecord:
    """An accepted run's record from the engine's outcome and the files that hold its outputs (either
    engine: uploaded by the stage, or written in place)."""
    return RunRecord(
        table=table,
        snapshot=snap,
        status="accepted",
        base_snapshot=base.snapshot if base else None,
        source_key=source_key,
        outputs=outputs,
        stats=outcome.stats.as_dict(),
        schema=[{"name": f.name, "type": str(f.type)} for f in outcome.schema],
        schema_changes=outcome.schema_changes,
        input_notes=outcome.input_notes,
        seconds=time.perf_counter() - started,
        commit_version=commit_version,
        files=files,
    )


def localized(store: S3Store, record: RunRecord, outcome: DiffOutcome, work: Path, scd2: bool) -> DiffOutcome:
    """``outcome`` with local copies of the files SCD2 reads (the change set, or a first snapshot's full
    load), when the table has an SCD2 history; as it is otherwise (nothing is downloaded)."""
    if not scd2:
        return outcome
    folder = work / "placed"
    if record.base_snapshot is None:
        joined = download_output(store, record.keys("full_load"), folder / "full_load.parquet", record)
        return dataclasses.replace(outcome, full_load_path=joined.path)
    joined = download_output(store, record.keys("cdc"), folder / "cdc.parquet", record)
    return dataclasses.replace(outcome, changes_path=joined.path)
