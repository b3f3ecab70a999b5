"""The change set's files, and the feeds built from it, written by tasks in files of about
:data:`CHANGE_FILE_BYTES`.

A diff task writes its bucket's changes (and pre-images) as one small part: a table of 1B rows has
thousands of buckets, and a change set is often a small share of the table. Those parts are scratch.
The driver plans, from their sizes only (:func:`plan`), which consecutive parts make one file; one task
per planned file then reads its parts and writes the change set's part, the changelog's part and the DMS
feed's part, with the same functions as the CDC function's feeds (:mod:`snapcdc.cdc.feeds`): the Lambda
path's single file is the case of one planned file.

A table's first snapshot has no change set in the lake (its full load is the start of the stream): its
feeds are built the same way from the full load's parts, a row group at a time.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from snapcdc.cdc.feeds import changelog_inserts, changelog_rows, dms_changes, dms_rows
from snapcdc.cdc.feeds.files import GROUP_ROWS, data_columns
from snapcdc.engine.parquet_output import parquet_options
from snapcdc.engine.spec import WrittenFile
from snapcdc.spark.outputs import PartTarget
from snapcdc.spark.sources import Source
from snapcdc.spark.tasks import parallel

CHANGE_FILE_BYTES = 128 << 20  # the size a change set's (and each feed's) file is planned to
CDC, CHANGELOG, DMS = "cdc", "changelog", "dms"  # the outputs a merge task writes (the run record's names)
_PART_NUMBER = re.compile(r"part-(\d+)\.parquet$")


@dataclass(frozen=True)
class PlannedFile:
    """One file of the merged outputs: its part number and the source parts (indexes) it holds."""

    part: int
    sources: tuple[int, ...]


def plan(sizes: Sequence[int], limit: int = CHANGE_FILE_BYTES) -> list[PlannedFile]:
    """Consecutive source parts packed into files of at most ``limit`` bytes (a part bigger than that
    is a file of its own), first fit in order: every part in exactly one file, in order. At least one
    file, empty when there is no part (an empty file still says the schema)."""
    files: list[PlannedFile] = []
    current: list[int] = []
    held = 0
    for index, size in enumerate(sizes):
        if current and held + size > limit:
            files.append(PlannedFile(len(files), tuple(current)))
            current, held = [], 0
        current.append(index)
        held += size
    if current or not files:
        files.append(PlannedFile(len(files), tuple(current)))
    return files


@dataclass(frozen=True)
class ChangePart:
    """A source part: a bucket's changes (and the pre-images of its updates), or a full load's part."""

    rows: Source
    bytes: int
    preimages: Source | None = None


@dataclass(frozen=True)
class FeedRequest:
    """What a merge writes: ``first``: the sources are a first snapshot's full load (no change set is
    written, the feeds are its rows as inserts); ``target``: a template per output written."""

    first: bool
    version: int  # the changelog's _commit_version
    at: datetime  # the snapshot's time (the feeds' timestamps)
    target: PartTarget  # templates for some of CDC, CHANGELOG, DMS


@dataclass(frozen=True)
class MergedFile:
    """What one merge task hands back: per output, the file it wrote."""

    part: int
    files: dict[str, WrittenFile]


def pair_preimages(
    changes: list[WrittenFile], preimages: list[WrittenFile], endpoint_url: str | None
) -> list[ChangePart]:
    """The diff's change parts with their bucket's pre-images part (same part number), in order."""
    by_number = {_number(f.location): f for f in preimages}
    parts = []
    for file in changes:
        pre = by_number.get(_number(file.location))
        parts.append(
            ChangePart(
                Source(file.location, endpoint_url),
                file.bytes,
                Source(pre.location, endpoint_url) if pre is not None else None,
            )
        )
    return parts


def _number(location: str) -> int:
    found = _PART_NUMBER.search(location)
    if found is None:
        raise ValueError(f"not a part file: {location}")
    return int(found.group(1))


class _Writers:
    """One streaming Parquet writer per output, opened with the first table's schema and options."""

    def __init__(self, folder: Path, names: Sequence[str]) -> None:
        self.paths = {name: folder / f"{name}.parquet" for name in names}
        self.writers: dict[str, pq.ParquetWriter] = {}
        self.rows = dict.fromkeys(names, 0)

    def write(self, name: str, table: pa.Table) -> None:
        if name not in self.paths:
            return
        table = table.replace_schema_metadata(None)
        writer = self.writers.get(name)
        if writer is None:
            options = parquet_options(table.schema, table)
            writer = self.writers[name] = pq.ParquetWriter(self.paths[name], table.schema, **options)
        writer.write_table(table.cast(writer.schema), GROUP_ROWS)
        self.rows[name] += table.num_rows

    def close(self) -> dict[str, WrittenFile]:
        for writer in self.writers.values():
            writer.close()
        return {
            name: WrittenFile(str(path), self.rows[name], path.stat().st_size)
            for name, path in self.paths.items()
            if path.exists()
        }


def _row_groups(source: Source) -> Iterator[pa.Table]:
    """The file a row group at a time (a file of none: its schema, empty)."""
    with source.open() as handle:
        parquet = pq.ParquetFile(handle)
        if not parquet.num_row_groups:
            yield parquet.schema_arrow.empty_table()
        for group in range(parquet.num_row_groups):
            yield parquet.read_row_group(group)


def _read(source: Source) -> pa.Table:
    with source.open() as handle:
        return pq.read_table(handle)


def merge_file(planned: PlannedFile, parts: Sequence[ChangePart], request: FeedRequest) -> MergedFile:
    """One planned file of each output, written from its source parts (in a task)."""
    names = list(request.target.templates)
    scratch = Path(tempfile.mkdtemp(prefix=f"snapcdc-merge-{planned.part:05d}-"))
    try:
        writers = _Writers(scratch, names)

        def write(rows: pa.Table, pre: pa.Table | None) -> None:
            if request.first:
                data = data_columns(rows)
                writers.write(CHANGELOG, changelog_inserts(data, request.version, request.at))
                writers.write(DMS, dms_rows(data, "I", request.at))
                return
            writers.write(CDC, rows)
            if CHANGELOG in writers.paths:
                writers.write(CHANGELOG, changelog_rows(rows, pre, request.version, request.at))
            writers.write(DMS, dms_changes(rows, request.at))

        chosen = [parts[i] for i in planned.sources]
        for part in chosen:
            if request.first:
                for group in _row_groups(part.rows):
                    write(group, None)
            else:
                write(_read(part.rows), _read(part.preimages) if part.preimages is not None else None)
        written = writers.close()
        return MergedFile(
            planned.part, {name: request.target.place(file, name, planned.part) for name, file in written.items()}
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def merge(
    spark: Any, parts: list[ChangePart], request: FeedRequest, limit: int | None = None
) -> dict[str, list[WrittenFile]]:
    """Every planned file written by a task of its own; per output, its files in part order. ``parts``:
    at least one (an output with no row still has a file, empty, that says the schema)."""
    if not parts:
        raise ValueError("nothing to merge: a run has at least one change (or full load) part")
    planned = plan([p.bytes for p in parts], limit or CHANGE_FILE_BYTES)

    def work(one: PlannedFile) -> MergedFile:
        return merge_file(one, parts, request)

    done: list[MergedFile] = parallel(spark, work, planned)
    files: dict[str, list[WrittenFile]] = {}
    for merged in sorted(done, key=lambda m: m.part):
        for name, file in merged.files.items():
            files.setdefault(name, []).append(file)
    return files


__all__ = [
    "CDC",
    "CHANGELOG",
    "CHANGE_FILE_BYTES",
    "DMS",
    "ChangePart",
    "FeedRequest",
    "MergedFile",
    "PlannedFile",
    "merge",
    "merge_file",
    "pair_preimages",
    "plan",
]
