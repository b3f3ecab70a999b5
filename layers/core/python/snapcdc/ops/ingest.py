"""``snapcdc ingest``'s policy: put a local file as a table's snapshot and process it as the CDC function
would, unless the snapshot was processed already (from the same content: nothing to do; from other
content: refused) or the table already has a later snapshot (backfill goes oldest first)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from snapcdc.cdc.stage import TableProcessor
from snapcdc.errors import PermanentError
from snapcdc.lake.ledger import processed_snapshots, read_run_record
from snapcdc.lake.records import RunRecord
from snapcdc.lake.snapshot import Snapshot


class IngestRefused(PermanentError, ValueError):
    """The file is not ingested; the message says why and what to do instead."""


@dataclass(frozen=True)
class Ingested:
    """What an ingest did: the run records written now (earlier pending snapshots first, this one last;
    none when it was processed already) and this snapshot's record."""

    records: list[RunRecord]
    record: RunRecord
    key: str  # the raw object's key

    @property
    def already_processed(self) -> bool:
        return not self.records


def ingest(stage: TableProcessor, snapshot: Snapshot, source: Path) -> Ingested:
    """Puts ``source`` where the extract puts the table's ``snapshot`` and processes it (the run record
    last); raises :class:`IngestRefused` when it must not."""
    store, name = stage.store, stage.name
    key = store.layout.raw_key(name, snapshot.id, stage.table.file)
    done = read_run_record(store, name, snapshot.id)
    if done is not None:
        stored = store.get_bytes(key)
        if stored is not None and stored != source.read_bytes():
            raise IngestRefused(
                f"table {name} snapshot {snapshot.id} was already processed from different content "
                f"(s3://{store.bucket}/{key}); use `snapcdc replay` to recompute it"
            )
        return Ingested([], done, key)
    newer = [s for s in processed_snapshots(store, name) if s > snapshot.id]
    if newer:
        raise IngestRefused(
            f"table {name} already has the later snapshot {newer[-1]}; "
            "backfill oldest first, or put the file under raw/ and use `snapcdc replay`"
        )
    store.upload_file(source, key, "text/csv")
    records = stage.process(snapshot)
    assert records and records[-1].snapshot == snapshot.id
    return Ingested(records, records[-1], key)
