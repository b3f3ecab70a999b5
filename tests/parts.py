"""An output split into N part files, as the Spark job's tasks write it: the moto tier's stand-in for
its layout (docs/design.md, "An output is N files").

:func:`split_output` rewrites one output of a written run as ``parts`` files at
:meth:`~snapcdc.lake.layout.Layout.part_key` beside its single file (which is deleted), and rewrites
the run record to list them, the output's ``outputs`` entry being its first part's key."""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from snapcdc.lake.layout import Layout
from snapcdc.lake.ledger import read_run_record, write_run_record
from snapcdc.lake.records import OutputFile, RunRecord
from snapcdc.lake.store import S3Store

PARQUET = "application/vnd.apache.parquet"


def _bounds(rows: int, parts: int) -> list[tuple[int, int]]:
    """``parts`` slices of ``rows`` as even as they go (empty ones when there are fewer rows)."""
    cuts = [rows * part // parts for part in range(parts + 1)]
    return list(itertools.pairwise(cuts))


def _parquet(rows: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(rows, sink, row_group_size=max(1, rows.num_rows // 2 or 1))
    return sink.getvalue()


def split_output(store: S3Store, table: str, snap: str, name: str, parts: int = 3) -> RunRecord:
    """The output ``name`` of the run of ``table`` at ``snap`` rewritten as ``parts`` part files, with
    its run record listing them; returns the rewritten record."""
    record = read_run_record(store, table, snap)
    assert record is not None, f"no run record of {table} {snap}"
    (key,) = record.keys(name)  # a run the CDC function wrote: one file
    body = store.get_bytes(key)
    assert body is not None, key
    whole = pq.read_table(pa.BufferReader(body))
    files = []
    for part, (start, end) in enumerate(_bounds(whole.num_rows, parts)):
        part_key = Layout.part_key(key, part)
        data = _parquet(whole.slice(start, end - start))
        store.put_bytes(part_key, data, PARQUET)
        files.append(OutputFile(key=part_key, rows=end - start, bytes=len(data)))
    store.delete(key)
    rewritten = record.model_copy(
        update={"outputs": {**record.outputs, name: files[0].key}, "files": {**record.files, name: files}}
    )
    write_run_record(store, rewritten)
    return rewritten


def split_run(
    store: S3Store, table: str, snap: str, names: Sequence[str] = ("snapshot", "cdc", "full_load"), parts: int = 3
) -> RunRecord:
    """Every output of ``names`` the run wrote, split into ``parts`` files."""
    record = read_run_record(store, table, snap)
    assert record is not None, f"no run record of {table} {snap}"
    for name in names:
        if record.keys(name):
            record = split_output(store, table, snap, name, parts)
    return record
