"""The Spark twin of :func:`snapcdc.engine.diff_files`: the same inputs, the same rows out, the work
spread over a Spark cluster (local Spark on a laptop, AWS Glue in the pipeline). Tasks write, the
driver commits: every output is written by the executors as part files (:mod:`snapcdc.spark.diff`),
and the driver gathers only counts, schemas and file lists, nothing whose size grows with the rows.

Stages (each an Arrow UDF calling the engine's modules, :mod:`snapcdc.spark.reader`,
:mod:`snapcdc.spark.diff`):

1. probe: the CSV's segment boundaries found in parallel tasks; every segment parsed typed by the
   engine's plan; segments ending inside a quoted value joined with the next (a file that still cannot
   be cut is diffed by the engine itself);
2. typing facts (only when a value did not fit the plan): the driver decides every column's type;
3. new rows typed, hashed by key and shuffled to their buckets, one partition per bucket; old rows
   read in their bucket's task (a bucketed snapshot) or shuffled alike; each bucket diffed by the
   engine and written by the engine's writer, in its task;
4. the driver sums the tasks' counts, checks them against the inputs, applies the delete guard (a
   refused run's parts are deleted: nothing is committed) and returns every file with rows and bytes.
"""

from __future__ import annotations

import pickle
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from snapcdc.engine import data_only, diff_files, has_cached_hashes, writer
from snapcdc.engine.parts import (
    OutputFiles,
    WrittenFile,
    check_keys,
    is_parquet,
    read_header,
    sample_strings,
    utc,
    with_cdc,
    write_table,
)
from snapcdc.engine.spec import (
    DiffOutcome,
    DiffStats,
    TableSpec,
)
from snapcdc.spark import commit, diff, reader
from snapcdc.spark.outputs import PartTarget
from snapcdc.spark.partitions import bucket_count, lanes
from snapcdc.spark.sources import Source, shipped
from snapcdc.spark.tasks import blobs, parallel

T = TypeVar("T")
_JOIN_ROUNDS = 3  # the engine joins a segment with up to 3 next ones before giving up on segments


@dataclass(frozen=True)
class OldSide:
    """The old snapshot's files, as stored: their schema, row groups' rows, and total bytes."""

    parts: tuple[Source, ...]
    schema: pa.Schema
    groups: tuple[tuple[int, ...], ...]  # rows of each row group, per file
    bytes: int

    @property
    def rows(self) -> int:
        return sum(sum(g) for g in self.groups)

    def bucketed(self) -> bool:
        """Written by this engine's tasks: part i of the files is bucket i (names end in i)."""
        return all(p.location.endswith(f"{i:05d}.parquet") for i, p in enumerate(self.parts))


def _footer(source: Source) -> tuple[tuple[int, ...], int]:
    with source.open() as handle:
        metadata = pq.ParquetFile(handle).metadata
    return tuple(metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)), source.size()


def _stored_schema(source: Source) -> pa.Schema | None:
    """The file's schema when it is a snapshot written by an engine (hash columns, signature)."""
    with source.open() as handle:
        if handle.read(4) != b"PAR1":
            return None
        handle.seek(0)
        schema = pq.ParquetFile(handle).schema_arrow
    if has_cached_hashes(schema):
        return schema
    return None


def old_sources(old: Path | str | list[str], endpoint_url: str | None) -> list[Source]:
    """The old snapshot's files: one file, a folder of part files, or a list of them (a run record's)."""
    if isinstance(old, list):
        return [Source(o, endpoint_url) for o in old]
    if not str(old).startswith("s3://") and Path(old).is_dir():
        return [Source(str(p)) for p in sorted(Path(old).glob("*.parquet"))]
    return [Source(str(old), endpoint_url)]


def spark_diff_files(
    spark: Any,
    *,
    old: Path | str | list[str] | None,
    new: Path | str,
    spec: TableSpec,
    observed_at: datetime,
    out_dir: Path,
    new_name: str | None = None,
    old_name: str | None = None,
    endpoint_url: str | None = None,
    target: PartTarget | None = None,
) -> DiffOutcome:
    """:func:`snapcdc.engine.diff_files` on Spark: local paths or ``s3://`` objects in, the outputs
    written by the tasks as part files at ``target`` (default: ``out_dir/<output>.parquet/part-*``),
    every file listed in the outcome with its rows and bytes."""
    started = time.perf_counter()
    out_dir = Path(out_dir).absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    target = target or PartTarget.folder(out_dir, writer.OUTPUTS)
    old_label = old_name or (str(old) if old is not None and not isinstance(old, list) else "<none>")
    labels = (new_name or str(new), old_label if old is not None else "<none>")
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".work-") as folder:
        work = Path(folder)
        ship = work / "shipped"
        new_source = shipped(spark, Source(str(new), endpoint_url), ship)
        old_side = None
        if old is not None:
            sources = [shipped(spark, s, ship) for s in old_sources(old, endpoint_url)]
            schema = _stored_schema(sources[0]) if sources else None
            if schema is None:  # plain data as the old side: accepted first, as the engine accepts it
                accepted = spark_diff_files(
                    spark,
                    old=None,
                    new=sources[0].location,
                    spec=spec,
                    observed_at=observed_at,
                    out_dir=work / "old",
                    new_name=labels[1],
                    endpoint_url=endpoint_url,
                )
                sources = [Source(f.location) for f in accepted.files[writer.SNAPSHOT]]
                schema = _stored_schema(sources[0])
                assert schema is not None
            footers = parallel(spark, _footer, sources)
            groups = tuple(g for g, _ in footers)
            old_side = OldSide(tuple(sources), schema, groups, sum(size for _, size in footers))
        outcome = _diff(spark, old_side, new_source, spec, observed_at, target, labels, work)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _engine_itself(
    old: OldSide | None,
    new: Source,
    spec: TableSpec,
    observed_at: datetime,
    target: PartTarget,
    labels: tuple[str, str],
    work: Path,
) -> DiffOutcome:
    """The engine itself, for a file segments cannot read: it refuses it (naming the line) or reads it
    in one stream; its files placed as part 0 of each output."""
    old_files = [s.fetch(work / f"old-{i:05d}.parquet") for i, s in enumerate(old.parts)] if old else None
    outcome = diff_files(
        old=old_files,
        new=new.fetch(work / "new.input"),
        spec=spec,
        observed_at=observed_at,
        out_dir=work / "engine",
        new_name=labels[0],
        old_name=labels[1],
    )
    files = {
        name: [target.place(f, name, 0) for f in found]
        for name, found in outcome.files.items()
        if name in target.templates  # what the target does not ask for is left in the scratch folder
    }
    return _outcome(outcome.stats, files, target, outcome.schema, outcome.schema_changes)


def _diff(
    spark: Any,
    old: OldSide | None,
    new: Source,
    spec: TableSpec,
    observed_at: datetime,
    target: PartTarget,
    labels: tuple[str, str],
    work: Path,
) -> DiffOutcome:
    previous = data_only(old.schema) if old is not None else None
    size = new.size()
    parquet = is_parquet(new.fetch_prefix(work / "magic", 4)) or new.location.lower().endswith(".parquet")
    if parquet:
        with new.open() as handle:
            names = data_only(pq.ParquetFile(handle).schema_arrow).names
        layout = reader.Layout(new, True, names, ",", reader.parquet_pieces(new))
        typing = None
    else:
        sample_path = reader.read_sample(new, work, size)
        names, sep = read_header(sample_path, labels[0], spec.delimiter)
        check_keys(names, spec, labels[0])
        starts = parallel(spark, lambda at: reader.line_start_after(new, at, size), reader.nominal_starts(size))
        layout = reader.Layout(new, False, names, sep, reader.csv_pieces(new, size, starts))
        try:
            sample = sample_strings(sample_path, labels[0], names, sep)
        except Exception:  # the engine's sample failed too: it would take the exact path
            typing = None
        else:
            typing = reader.planned(names, spec, previous, sample)
    check_keys(layout.names, spec, labels[0])
    if parquet:
        typing = None  # a Parquet new side is always typed the exact way (as the engine does)

    buckets, bucketed = bucket_count(size, old.bytes if old else 0, len(old.parts) if old and old.bucketed() else 0)
    lane = lanes(spark, buckets)
    new_frame: Any = None
    probes: list[reader.Probe] = []
    if typing is not None:
        # 1. the fast path: every piece typed by the plan and bucketed in one pass, kept while the
        # driver learns whether every piece fit (as the engine's fast read does)
        new_frame, probes = _fast_side(spark, layout, typing.schema, spec, buckets, lane)
    if new_frame is None:
        # 1'. the exact path: pieces that end inside a quoted value joined with the next
        readable, probes = _probed(spark, layout)
        if readable is None:
            return _engine_itself(old, new, spec, observed_at, target, labels, work)
        layout = readable
        # 2. the file's typing, from every piece's facts
        head = reader.read_head(layout, [p.rows for p in probes])
        found = reader.candidates(layout.names, spec, previous, head)
        pieces = layout.pieces
        facts = parallel(spark, lambda piece: reader.type_facts(layout, piece, spec, previous, found), pieces)
        typing = reader.exact_typing(layout.names, spec, previous, found, facts)
        final = typing

        def new_side(piece: reader.Piece) -> list[tuple[int, bytes]]:
            table, reasons = reader.typed_rows(layout, piece, spec, final)
            return list(diff.new_blobs(table, reasons, piece.index, spec, buckets))

        new_frame = blobs(spark, new_side, layout.pieces, diff.NEW_SIDE, lane)

    # 3. old rows in their buckets; every bucket diffed and written by the engine in its task
    assert typing is not None
    # a bucketed old side's keys hash to their buckets only while the keys keep their types
    bucketed = (
        bucketed
        and old is not None
        and all(old.schema.field(k).type == typing.schema.field(k).type for k in spec.primary_key)
    )
    rows = [p.rows for p in probes]
    starts_of = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
    context = diff.Context(
        spec,
        typing.schema,
        old.schema if old else None,
        utc(observed_at),
        labels[1],
        tuple(int(s) for s in starts_of),
        layout,
        target,
        buckets,
        old.parts if old is not None and bucketed else (),
    )
    marks = [(b, diff.MARK, b"") for b in lane]  # every bucket's task runs, even with no new row
    frame = new_frame.unionByName(spark.createDataFrame(marks, "bucket int, side int, payload binary"))
    if old is not None and not bucketed:
        frame = frame.unionByName(_old_side(spark, old, typing.schema, spec, buckets, labels[1], lane))

    def diffed(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext

        sides, payloads = [], []
        for batch in batches:
            sides += batch.column("side").to_pylist()
            payloads += batch.column("payload").to_pylist()
        task = TaskContext.get()
        assert task is not None  # a Spark task runs this
        result = diff.diff_partition(task.partitionId(), sides, payloads, context)
        yield pa.RecordBatch.from_arrays([pa.array([pickle.dumps(result)], pa.binary())], names=["result"])

    try:
        done = frame.repartition(buckets, "bucket").mapInArrow(diffed, "result binary").collect()
    except BaseException:
        target.remove_parts(buckets)  # what the tasks that finished wrote: a failed run commits nothing
        raise
    results: list[diff.PartResult] = [pickle.loads(r.result) for r in done]  # noqa: S301
    written = [f for r in results for f in r.files.values()]
    try:  # the delete guard and the checks, from the tasks' counts, before anything is committed
        gathered = commit.gathered(results, buckets, int(starts_of[-1]), old.rows if old is not None else 0, spec)
        target.check_seen(written)
    except BaseException:
        target.remove(written)  # nothing of a refused or failed run is left for a reader to find
        raise
    files = gathered.files
    needed = [writer.SNAPSHOT, writer.CHANGES, *([writer.FULL_LOAD] if old is None else [])]
    for name in (n for n in needed if n not in files and n in target.templates):
        files[name] = [_empty_part(name, typing.schema, target, observed_at)]  # no bucket had a row: the schema
    return _outcome(gathered.stats, files, target, typing.schema, typing.schema_changes)


def _empty_part(name: str, schema: pa.Schema, target: PartTarget, observed_at: datetime) -> WrittenFile:
    table = with_cdc(schema.empty_table(), "I", utc(observed_at)) if name == writer.CHANGES else schema.empty_table()
    with tempfile.TemporaryDirectory(prefix="snapcdc-empty-") as folder:
        return target.place(write_table(table, OutputFiles(Path(folder), False).path(name)), name, 0)


def _outcome(
    stats: DiffStats,
    files: dict[str, list[WrittenFile]],
    target: PartTarget,
    schema: pa.Schema,
    schema_changes: list[dict[str, str]],
) -> DiffOutcome:
    def folder(name: str) -> Path | None:
        return target.folder_of(name) if files.get(name) else None

    snapshot = folder(writer.SNAPSHOT)
    assert snapshot is not None
    return DiffOutcome(
        stats=stats,
        changes_path=folder(writer.CHANGES) or snapshot,  # a target without a change set (the job's first load)
        snapshot_path=snapshot,
        full_load_path=folder(writer.FULL_LOAD),
        quarantine_path=folder(writer.QUARANTINE),
        schema=schema,
        schema_changes=schema_changes,
        seconds=0.0,
        preimages_path=folder(writer.PREIMAGES),
        files=files,
    )


def _fast_side(
    spark: Any, layout: reader.Layout, planned: pa.Schema, spec: TableSpec, buckets: int, lane: list[int]
) -> tuple[Any | None, list[reader.Probe]]:
    """The new side typed by the plan and bucketed (None when a piece did not fit or parse). A first
    job only parses each piece typed (as the engine's fast read) and reports; the rows are made again
    by the diff job: a second parse costs less than caching the rows in the JVM."""
    count = len(layout.pieces)

    def probe(piece: reader.Piece) -> reader.Probe:
        return reader.fast_piece(layout, piece, planned, piece.index == count - 1)[0]

    probes = parallel(spark, probe, layout.pieces)
    if any(p.status != reader.OK for p in probes):
        return None, probes

    def side(piece: reader.Piece) -> list[tuple[int, bytes]]:
        _, table = reader.fast_piece(layout, piece, planned, piece.index == count - 1)
        if table is None:  # the file changed under the job: never diff what was not probed
            raise RuntimeError(f"piece {piece.index} of {layout.source.location} no longer reads as probed")
        return list(diff.new_blobs(table, None, piece.index, spec, buckets))

    return blobs(spark, side, layout.pieces, diff.NEW_SIDE, lane), probes


def _probed(spark: Any, layout: reader.Layout) -> tuple[reader.Layout | None, list[reader.Probe]]:
    """Pieces every one of which parses as text and ends on a record boundary, joining a piece with the
    next as the engine does (None: the file cannot be read in pieces)."""
    if layout.parquet:  # row groups: their row counts are in the footer
        return layout, [reader.probe(layout, piece, None, False) for piece in layout.pieces]
    for _ in range(_JOIN_ROUNDS + 1):
        current, count = layout, len(layout.pieces)

        def probe(piece: reader.Piece, current: reader.Layout = current, count: int = count) -> reader.Probe:
            return reader.probe(current, piece, None, piece.index == count - 1)

        probes = parallel(spark, probe, layout.pieces)
        statuses = [p.status for p in probes]
        if reader.BROKEN not in statuses:
            return layout, probes
        joined = reader.joined(layout.pieces, statuses)
        if joined is None:
            break
        layout = reader.Layout(layout.source, layout.parquet, layout.names, layout.sep, joined)
    return None, []


def _old_side(
    spark: Any, old: OldSide, schema: pa.Schema, spec: TableSpec, buckets: int, name: str, lane: list[int]
) -> Any:
    """The old snapshot's rows, a row group per task, shuffled to their buckets."""
    tasks, first = [], 0
    for part, groups in enumerate(old.groups):
        for group, rows in enumerate(groups):
            tasks.append((part, group, first))
            first += rows

    def side(task: tuple[int, int, int]) -> list[tuple[int, bytes]]:
        part, group, first_pos = task
        with old.parts[part].open() as handle:
            table = pq.ParquetFile(handle).read_row_group(group)
        return list(diff.old_blobs(table, first_pos, schema, spec, buckets, name))

    return blobs(spark, side, tasks, diff.OLD_SIDE, lane)
