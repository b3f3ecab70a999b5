"""Writing Parquet: a file written a row group at a time in a thread of its own, and the writer
options (codec per column, dictionary encoding, statistics) chosen from a file's first rows."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypedDict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from snapcdc.engine.arrow_numpy import arrow, empty_table
from snapcdc.engine.spec import HASH_COLUMNS


class WriterOptions(TypedDict):
    compression: dict[str, str]  # codec per column
    use_dictionary: list[str]  # columns dictionary-encoded
    write_statistics: list[str]  # columns given statistics


def parquet_options(
    schema: pa.Schema, sample: pa.Table, codec: str = "snappy", indexed: list[str] | None = None
) -> WriterOptions:
    """Writer options for a file whose first rows are ``sample`` (they decide which columns to compress
    and which to dictionary-encode). Statistics go on every data column, or on ``indexed`` only."""
    # Hashes are random bytes: dictionary encoding, compression and statistics only cost time there.
    # Dictionary encoding pays off for repetitive text; on numbers, timestamps and ids it is wasted.
    names = schema.names
    texts = [f.name for f in schema if pa.types.is_string(f.type) and f.name not in HASH_COLUMNS]
    dictionary = [name for name in texts if _repetitive(sample[name])]
    plain = set(HASH_COLUMNS) | _incompressible(sample, codec, dictionary)
    return WriterOptions(
        compression={c: ("none" if c in plain else codec) for c in names},
        use_dictionary=dictionary,
        write_statistics=[c for c in names if c not in HASH_COLUMNS] if indexed is None else indexed,
    )


def _repetitive(column: pa.ChunkedArray) -> bool:
    """Whether the column's first rows repeat values (at most half distinct): worth a dictionary."""
    probe = column.slice(0, _COMPRESSION_PROBE_ROWS)
    return bool(pc.count_distinct(probe).as_py() <= (len(probe) - probe.null_count) // 2)


# Compressing a column that shrinks less than this (random ids such as UUIDs) costs time for nothing.
_WORTH_COMPRESSING = 0.9
_COMPRESSION_PROBE_ROWS = 16_384


def _incompressible(sample: pa.Table, codec: str, dictionary: list[str]) -> set[str]:
    """Columns whose first rows, written as Parquet, shrink by less than 10% under ``codec``."""
    if codec == "none":
        return set()
    probe = sample.slice(0, _COMPRESSION_PROBE_ROWS)
    found = set()
    for name in probe.column_names:
        if name in HASH_COLUMNS:
            continue
        sizes = [_parquet_bytes(probe.select([name]), each, name in dictionary) for each in (codec, "none")]
        if sizes[0] > _WORTH_COMPRESSING * sizes[1]:
            found.add(name)
    return found


def _parquet_bytes(table: pa.Table, codec: str, dictionary: bool) -> int:
    """Size of ``table`` written as Parquet (in memory): pages as the real file would hold them."""
    out = pa.BufferOutputStream()
    pq.write_table(table, out, compression=codec, use_dictionary=dictionary, write_statistics=False)
    size: int = out.getvalue().size
    return size


class ParquetOutput:
    """A Parquet file written a row group at a time in a thread of its own (the encoder releases the
    GIL); its codecs are chosen from its first row group. ``shape`` turns a row group of the snapshot
    into this file's rows. ``indexed``: the columns given statistics (None: every data column).
    ``group_rows``: the most rows a row group of the file holds."""

    def __init__(
        self,
        path: Path,
        codec: str,
        shape: Callable[[pa.Table], pa.Table],
        snapshot: pa.Schema,
        group_rows: int,
        indexed: list[str] | None = None,
    ) -> None:
        self.path = path
        self.group_rows = group_rows
        self.codec = codec
        self.shape = shape
        self.indexed = indexed
        self.empty = empty_table(snapshot)  # what an empty snapshot writes: still a file
        self.writer: pq.ParquetWriter | None = None
        self.options: WriterOptions | None = None
        self.thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parquet-writer")
        self.pending: Future[None] | None = None

    def submit(self, rows: pa.Table) -> None:
        """Writes ``rows`` (one row group) while the next ones are diffed."""
        self.wait()
        self.pending = self.thread.submit(self._write, rows)

    def _write(self, rows: pa.Table) -> None:
        shaped = self.shape(rows)
        self._opened(shaped).write_table(shaped, self.group_rows)

    def _opened(self, first: pa.Table) -> pq.ParquetWriter:
        if self.writer is None:
            self.options = parquet_options(first.schema, first, self.codec, self.indexed)
            self.writer = pq.ParquetWriter(self.path, first.schema, **self.options)
        return self.writer

    def finish(self, drop: np.ndarray, extra: pa.Table) -> None:
        """Completes the file in its thread (see :meth:`close`): the last rows, or when duplicates were
        found at the end (rare), a rewrite without their rows (``drop``, places in the file)."""
        self.wait()
        self.pending = self.thread.submit(self._complete, drop, extra)

    def _complete(self, drop: np.ndarray, extra: pa.Table) -> None:
        if len(drop) == 0 and extra.num_rows:
            self._write(extra)
        self._closed()
        if len(drop) == 0:
            return
        table = pq.ParquetFile(self.path).read()  # pq.read_table would import pandas (pyarrow.dataset)
        keep = np.ones(table.num_rows, dtype=bool)
        keep[drop] = False
        table = pa.concat_tables([table.filter(arrow(keep)), self.shape(extra).cast(table.schema)])
        assert self.options is not None  # the file was opened before it was closed
        pq.write_table(table, self.path, **self.options)

    def close(self) -> None:
        """Waits until the file is complete."""
        try:
            self.wait()
        finally:
            self.thread.shutdown()

    def abort(self) -> None:
        with contextlib.suppress(Exception):  # the error that made us abort is the one to report
            self.wait()
        with contextlib.suppress(Exception):
            self._closed()
        self.thread.shutdown()
        self.path.unlink(missing_ok=True)

    def _closed(self) -> None:
        """Closes the file (an empty snapshot's too: it is still a file with the schema)."""
        self._opened(self.shape(self.empty)).close()

    def wait(self) -> None:
        pending, self.pending = self.pending, None
        if pending is not None:
            pending.result()


def write_parquet(table: pa.Table, path: Path) -> None:
    """``table`` as one Parquet file (snappy), its options chosen from its first rows."""
    pq.write_table(table, path, **parquet_options(table.schema, table))
