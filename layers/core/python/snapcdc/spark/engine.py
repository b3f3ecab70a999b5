"""The Spark twin of :func:`snapcdc.engine.diff_files`: the same inputs, the same files out, the work
spread over a Spark cluster (local Spark on a laptop, AWS Glue in the pipeline).

Stages (each an Arrow UDF calling the engine's modules, :mod:`snapcdc.spark.reader`,
:mod:`snapcdc.spark.diff`):

1. probe: every CSV segment parsed typed by the engine's plan; segments ending inside a quoted value
   joined with the next (a file that still cannot be cut is diffed by the engine on the driver);
2. typing facts (only when a value did not fit the plan): the driver decides every column's type;
3. new and old rows typed, hashed by key and spread over partitions; each partition diffed by the
   engine; the driver sums the counts, applies the delete guard, orders the rows as the engine does;
4. the quarantined rows' text, read back from their segments; the files written by the engine's
   writers (:class:`~snapcdc.engine.sinks.ParquetSnapshot`, :func:`~snapcdc.engine.parquet_output.write_parquet`).
"""

from __future__ import annotations

import json
import pickle
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from snapcdc.engine import data_only, diff_files, has_cached_hashes, hashing
from snapcdc.engine.api import _first_load_copies
from snapcdc.engine.csv_input import is_parquet, read_header, sample_strings
from snapcdc.engine.differ import utc
from snapcdc.engine.new_side import STREAM_BATCH_ROWS, _as_text_table, _check_keys
from snapcdc.engine.parquet_output import write_parquet
from snapcdc.engine.sinks import ParquetSnapshot
from snapcdc.engine.spec import (
    KEY_HASH,
    QUARANTINE_REASON,
    ROW_HASH,
    SOURCE_RECORD,
    DeleteGuardError,
    DiffOutcome,
    DiffStats,
    InputError,
    TableSpec,
)
from snapcdc.spark import diff, reader
from snapcdc.spark.sources import Source

T = TypeVar("T")
_JOIN_ROUNDS = 3  # the engine joins a segment with up to 3 next ones before giving up on segments


def parallel(spark: Any, work: Callable[[Any], T], tasks: list[Any]) -> list[T]:
    """``work`` applied to each task in a Spark task of its own (results back in order)."""
    if not tasks:
        return []
    rows = [(i, pickle.dumps(task)) for i, task in enumerate(tasks)]
    frame = spark.createDataFrame(spark.sparkContext.parallelize(rows, len(rows)), "i int, task binary")

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            numbers, results = [], []
            for number, task in zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True):
                numbers.append(number)
                results.append(pickle.dumps(work(pickle.loads(task))))  # noqa: S301 - our own tasks
            yield pa.RecordBatch.from_arrays(
                [pa.array(numbers, pa.int32()), pa.array(results, pa.binary())], names=["i", "result"]
            )

    out: list[Any] = [None] * len(tasks)
    for row in frame.mapInArrow(run, "i int, result binary").collect():
        out[row.i] = pickle.loads(row.result)  # noqa: S301
    return out


def _partitions(spark: Any, size: int) -> int:
    """Partitions of the diff: about 64 MB of input each, at least two per core."""
    return max(2 * int(spark.sparkContext.defaultParallelism), -(-size // (64 << 20)))


def _stored_snapshot(source: Source) -> pa.Schema | None:
    """The old file's schema when it is a snapshot written by an engine (hash columns, signature)."""
    with source.open() as handle:
        if handle.read(4) != b"PAR1":
            return None
        handle.seek(0)
        schema = pq.ParquetFile(handle).schema_arrow
    if has_cached_hashes(schema):
        return schema
    return None


def spark_diff_files(
    spark: Any,
    *,
    old: Path | str | None,
    new: Path | str,
    spec: TableSpec,
    observed_at: datetime,
    out_dir: Path,
    new_name: str | None = None,
    old_name: str | None = None,
    endpoint_url: str | None = None,
) -> DiffOutcome:
    """:func:`snapcdc.engine.diff_files` on Spark: local paths or ``s3://`` objects in, the engine's
    files written into ``out_dir`` (on the driver)."""
    started = time.perf_counter()
    new_source, old_source = Source(str(new), endpoint_url), Source(str(old), endpoint_url) if old else None
    labels = (new_name or str(new), old_name or (str(old) if old is not None else "<none>"))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir, prefix=".work-") as folder:
        work = Path(folder)
        old_schema = _stored_snapshot(old_source) if old_source is not None else None
        if old_source is not None and old_schema is None:
            # Plain data as the old side: accepted first, as the engine accepts it.
            accepted = spark_diff_files(
                spark,
                old=None,
                new=old_source.location,
                spec=spec,
                observed_at=observed_at,
                out_dir=work / "old",
                new_name=labels[1],
                endpoint_url=endpoint_url,
            )
            old_source = Source(str(accepted.snapshot_path))
            old_schema = _stored_snapshot(old_source)
        outcome = _diff(spark, old_source, old_schema, new_source, spec, observed_at, out_dir, labels, work)
    outcome.seconds = time.perf_counter() - started
    return outcome


def _engine_on_driver(
    old: Source | None,
    new: Source,
    spec: TableSpec,
    observed_at: datetime,
    out_dir: Path,
    labels: tuple[str, str],
    work: Path,
) -> DiffOutcome:
    """The engine itself, for a file segments cannot read: it refuses it (naming the line) or reads it
    in one stream."""
    return diff_files(
        old=old.fetch(work / "old.parquet") if old is not None else None,
        new=new.fetch(work / "new.input"),
        spec=spec,
        observed_at=observed_at,
        out_dir=out_dir,
        new_name=labels[0],
        old_name=labels[1],
    )


def _diff(
    spark: Any,
    old: Source | None,
    old_schema: pa.Schema | None,
    new: Source,
    spec: TableSpec,
    observed_at: datetime,
    out_dir: Path,
    labels: tuple[str, str],
    work: Path,
) -> DiffOutcome:
    previous = data_only(old_schema) if old_schema is not None else None
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
        _check_keys(names, spec, labels[0])
        layout = reader.Layout(new, False, names, sep, reader.csv_pieces(new, size))
        try:
            sample = sample_strings(sample_path, labels[0], names, sep)
        except Exception:  # the engine's sample failed too: it would take the exact path
            typing = None
        else:
            typing = reader.planned(names, spec, previous, sample)
    _check_keys(layout.names, spec, labels[0])
    if parquet:
        typing = None  # a Parquet new side is always typed the exact way (as the engine does)

    buckets = _partitions(spark, size)
    new_frame: Any = None
    probes: list[reader.Probe] = []
    if typing is not None:
        # 1. the fast path: every piece typed by the plan and bucketed in one pass, kept while the
        # driver learns whether every piece fit (as the engine's fast read does)
        new_frame, probes = _fast_side(spark, layout, typing.schema, spec, buckets)
    if new_frame is None:
        # 1'. the exact path: pieces that end inside a quoted value joined with the next
        readable, probes = _probed(spark, layout)
        if readable is None:
            return _engine_on_driver(old, new, spec, observed_at, out_dir, labels, work)
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

        new_frame = _blobs(spark, new_side, layout.pieces, diff.NEW_SIDE)

    # 3. old rows bucketed the same way; every partition diffed by the engine
    assert typing is not None
    rows = [p.rows for p in probes]
    starts = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
    schema = typing.schema
    context = diff.Context(spec, schema, old_schema, utc(observed_at), labels[1], tuple(int(s) for s in starts))
    frame = new_frame
    if old is not None:
        frame = frame.unionByName(_old_side(spark, old, schema, spec, buckets, labels[1]))

    def diffed(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        sides, payloads = [], []
        for batch in batches:
            sides += batch.column("side").to_pylist()
            payloads += batch.column("payload").to_pylist()
        made = diff.diff_partition(sides, payloads, context)
        for at in range(0, len(made), _BLOBS_PER_BATCH):  # the JVM holds one Arrow batch at a time
            part = made[at : at + _BLOBS_PER_BATCH]
            yield pa.RecordBatch.from_arrays(
                [pa.array([k for k, _ in part]), pa.array([p for _, p in part], pa.binary())], names=["kind", "payload"]
            )

    results: dict[str, list[bytes]] = {}
    outputs = frame.repartition(buckets, "bucket").mapInArrow(diffed, "kind string, payload binary")
    # A partition at a time past a few hundred MB (the driver holds one partition's rows in the JVM),
    # all at once below (one Spark job instead of one per partition).
    rows_out = outputs.toLocalIterator(prefetchPartitions=True) if size > _COLLECT_BYTES else outputs.collect()
    for row in rows_out:
        results.setdefault(row.kind, []).append(row.payload)
    for error in results.get("error", []):
        found_error = json.loads(error)
        raise InputError(found_error["file"], found_error["line"], found_error["problem"])
    stats = _summed([json.loads(s) for s in results.get("stats", [])])
    old_rows = _row_count(old) if old is not None else 0
    if stats.rows_new != int(starts[-1]) or stats.rows_old != old_rows:
        # every row is in exactly one partition's counts: anything else is a lost partition, never a result
        raise RuntimeError(
            f"spark diff incomplete: partitions counted {stats.rows_new} new and {stats.rows_old} old rows,"
            f" the inputs hold {int(starts[-1])} and {old_rows}"
        )
    if stats.rows_old > 0 and not spec.allow_mass_delete and stats.deletes / stats.rows_old > spec.max_delete_ratio:
        raise DeleteGuardError(stats.deletes, stats.rows_old, spec.max_delete_ratio)

    # 4. the files
    quarantine = _quarantine(spark, layout, [diff.from_ipc(q) for q in results.get("quarantine", [])], starts)
    return _write(results, quarantine, stats, typing, spec, observed_at, out_dir, first=old is None)


_COLLECT_BYTES = 256 << 20
_BLOBS_PER_BATCH = 4  # blobs (of up to ~8 MB) per Arrow batch handed to the JVM


def _row_count(source: Source) -> int:
    with source.open() as handle:
        return int(pq.ParquetFile(handle).metadata.num_rows)


def _fast_side(
    spark: Any, layout: reader.Layout, planned: pa.Schema, spec: TableSpec, buckets: int
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

    return _blobs(spark, side, layout.pieces, diff.NEW_SIDE), probes


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


def _old_side(spark: Any, old: Source, schema: pa.Schema, spec: TableSpec, buckets: int, name: str) -> Any:
    """The old snapshot's rows, a row group per task, bucketed by key hash."""
    with old.open() as handle:
        metadata = pq.ParquetFile(handle).metadata
    group_rows = [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)]
    group_starts = np.concatenate([[0], np.cumsum(group_rows)]).astype(np.int64)

    def side(group: int) -> list[tuple[int, bytes]]:
        with old.open() as handle:
            table = pq.ParquetFile(handle).read_row_group(group)
        return list(diff.old_blobs(table, int(group_starts[group]), schema, spec, buckets, name))

    return _blobs(spark, side, list(range(len(group_rows))), diff.OLD_SIDE)


def _blobs(spark: Any, work: Callable[[Any], list[tuple[int, bytes]]], tasks: list[Any], side: int) -> Any:
    """A frame of (bucket, side, payload) rows made by ``work`` from each task, one Spark task each."""
    rows = [(pickle.dumps(task),) for task in tasks] or [(pickle.dumps(None),)]
    frame = spark.createDataFrame(spark.sparkContext.parallelize(rows, len(rows)), "task binary")

    def run(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for batch in batches:
            for task in batch.column(0).to_pylist():
                loaded = pickle.loads(task)  # noqa: S301 - our own tasks
                made = work(loaded) if loaded is not None else []
                for at in range(0, len(made), _BLOBS_PER_BATCH):
                    part = made[at : at + _BLOBS_PER_BATCH]
                    yield pa.RecordBatch.from_arrays(
                        [
                            pa.array([b for b, _ in part], pa.int32()),
                            pa.array([side] * len(part), pa.int32()),
                            pa.array([p for _, p in part], pa.binary()),
                        ],
                        names=["bucket", "side", "payload"],
                    )

    return frame.mapInArrow(run, "bucket int, side int, payload binary")


def _summed(parts: list[dict[str, int]]) -> DiffStats:
    names = [name for name in DiffStats.__dataclass_fields__]
    return DiffStats(**{name: sum(int(p.get(name, 0)) for p in parts) for name in names})


def _quarantine(spark: Any, layout: reader.Layout, parts: list[pa.Table], starts: np.ndarray) -> pa.Table | None:
    """The quarantined rows as the engine reports them: their text as read, why, their record number."""
    if not parts:
        return None
    found = pa.concat_tables(parts)
    found = found.take(pc.sort_indices(found, [(diff.ROW, "ascending")]))
    rows = found[diff.ROW].to_numpy()
    tasks = []
    for piece in layout.pieces:
        first, stop = int(starts[piece.index]), int(starts[piece.index + 1])
        wanted = rows[(rows >= first) & (rows < stop)]
        if len(wanted):
            tasks.append((piece, wanted - first))
    texts = parallel(spark, lambda task: _as_text_table(reader.text_rows(layout, task[0]).take(task[1])), tasks)
    text = pa.concat_tables(texts)
    text = text.append_column(QUARANTINE_REASON, found[QUARANTINE_REASON])
    return text.append_column(SOURCE_RECORD, pa.array(rows + 2, pa.int64()))


def _ordered(parts: list[bytes]) -> pa.Table | None:
    if not parts:
        return None
    tables = [diff.from_ipc(p) for p in parts]
    table = pa.concat_tables(tables)
    table = table.take(pc.sort_indices(table, [(diff.ORDER, "ascending")]))
    return table.drop_columns([diff.ORDER])


def _write(
    results: dict[str, list[bytes]],
    quarantine: pa.Table | None,
    stats: DiffStats,
    typing: reader.Typing,
    spec: TableSpec,
    observed_at: datetime,
    out_dir: Path,
    first: bool,
) -> DiffOutcome:
    """The engine's files, from the partitions' rows in the engine's order."""
    from snapcdc.engine.hash_columns import hash_signature, snapshot_schema

    snapshot_path, changes_path = out_dir / "snapshot.parquet", out_dir / "changes.parquet"
    full_load_path = out_dir / "full_load.parquet" if first else None
    quarantine_path = out_dir / "quarantine.parquet" if quarantine is not None else None
    stored = snapshot_schema(typing.schema, hash_signature(typing.schema, spec).text)
    snapshot = _ordered(results.get("snapshot", [])) or stored.empty_table()
    copies = _first_load_copies(full_load_path, changes_path, utc(observed_at)) if full_load_path else []
    sink = ParquetSnapshot(snapshot_path, stored, spec, copies=copies)
    written = [
        snapshot_path,
        changes_path,
        *([full_load_path] if full_load_path else []),
        *([quarantine_path] if quarantine_path else []),
    ]
    try:
        for batch in snapshot.cast(stored).to_batches(max_chunksize=STREAM_BATCH_ROWS):
            key_a = batch.column(KEY_HASH).to_numpy()
            row_a, row_b = hashing.row_hash_lanes(pa.chunked_array([batch.column(ROW_HASH)]))
            sink.write(batch.select(typing.schema.names), key_a, row_a, row_b)
        sink.finish(np.zeros(0, dtype=np.int64), stored.empty_table())
        if not first:
            changes = _ordered(results.get("changes", []))
            if changes is None:
                from snapcdc.engine.differ import with_cdc

                changes = with_cdc(typing.schema.empty_table(), "I", utc(observed_at))
            write_parquet(changes, changes_path)
        if quarantine is not None and quarantine_path is not None:
            write_parquet(quarantine, quarantine_path)
        sink.close()
    except BaseException:
        sink.abort()
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return DiffOutcome(
        stats=stats,
        changes_path=changes_path,
        snapshot_path=snapshot_path,
        full_load_path=full_load_path,
        quarantine_path=quarantine_path,
        schema=typing.schema,
        schema_changes=typing.schema_changes,
        seconds=0.0,
    )
