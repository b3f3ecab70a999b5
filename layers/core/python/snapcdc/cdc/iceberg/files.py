"""The Iceberg tables' data files: written once, under the table's own prefix, then listed by a commit.

A data file of an Iceberg table is a Parquet file whose columns carry the table's field ids
(``PARQUET:field_id``), so a rename or a retired column never changes what a file means. The files
are the tables' own (``iceberg/<table>/data/snapshot=<SNAP>/<uuid>.parquet``): the pipeline's
``snapshots/``, ``cdc/`` and ``full-load/`` files are rewritten by the schema migration
(:mod:`snapcdc.cdc.migrate`) when a column widens, and a file Iceberg's metadata lists must never
change, so Iceberg never lists them and the migration never lists ``iceberg/``.

:func:`write_part` writes one data file from one file of the pipeline's rows (a :class:`PartJob`:
the Lambda's own output just written, or an object of the bucket) and uploads it, streamed by batch
so a 10M-row snapshot is never in memory at once. Both engines call it: the CDC function in its own
process, the Glue job in one Spark task per file its run wrote (:mod:`snapcdc.spark.iceberg`).
:func:`data_files` turns the uploaded files into Iceberg ``DataFile`` entries from their Parquet
footers (one ranged GET each): the metadata-only half of a commit, on the Lambda or the job's driver.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.io.pyarrow import (
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
    schema_to_pyarrow,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.schema import Schema
from pyiceberg.table.metadata import TableMetadata

from snapcdc.engine.spec import CDC_OPERATION, CDC_TIMESTAMP
from snapcdc.errors import PermanentError
from snapcdc.lake.store import S3Store

FIELD_ID = b"PARQUET:field_id"
FOOTER_PROBE = 256 * 1024  # one ranged GET holds the footer of a file of a few row groups
CODEC = "zstd"
PARQUET = "application/vnd.apache.parquet"


class PartFileError(PermanentError, ValueError):
    """A file offered for a commit is not a data file of the table (missing, or other field ids)."""


@dataclass(frozen=True)
class PartFile:
    """A data file written for a commit: its key in the bucket, rows and bytes (as a run record lists it)."""

    key: str
    rows: int
    bytes: int


def new_file_name(snap: str) -> str:
    """A fresh name per attempt: a crashed attempt's file is never overwritten, only left unlisted."""
    return f"snapshot={snap}/{uuid.uuid4().hex}.parquet"


def arrow_schema(schema: Schema) -> pa.Schema:
    """The Arrow schema of the table's data files (field ids in each field's metadata)."""
    return schema_to_pyarrow(schema)


def conform_batch(batch: pa.RecordBatch | pa.Table, names: Mapping[str, str], target: pa.Schema) -> pa.Table:
    """``batch`` (pipeline column names) as the table's rows: columns renamed by ``names`` (pipeline name
    -> Iceberg name), in ``target``'s order and types; a column the batch lacks is null."""
    table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
    by_iceberg = {names.get(n, n): n for n in table.column_names}
    columns = []
    for field in target:
        source = by_iceberg.get(field.name)
        if source is None:
            columns.append(pa.nulls(table.num_rows, field.type))
        else:
            columns.append(table[source].cast(field.type))
    return pa.Table.from_arrays(columns, schema=target)


def write_rows(
    batches: Iterable[pa.RecordBatch | pa.Table], names: Mapping[str, str], schema: Schema, path: Path
) -> int:
    """Writes ``batches`` as one data file of ``schema`` at ``path``; returns the rows written."""
    return _write(batches, names, arrow_schema(schema), path)


def _write(
    batches: Iterable[pa.RecordBatch | pa.Table], names: Mapping[str, str], target: pa.Schema, path: Path
) -> int:
    rows = 0
    with pq.ParquetWriter(path, target, compression=CODEC) as writer:
        for batch in batches:
            table = conform_batch(batch, names, target)
            if table.num_rows:
                writer.write_table(table)
                rows += table.num_rows
    return rows


def parquet_batches(path: Path, drop: Sequence[str] = ()) -> Iterable[pa.RecordBatch]:
    """The record batches of a local Parquet file, without the columns ``drop``."""
    parquet = pq.ParquetFile(path)
    columns = [n for n in parquet.schema_arrow.names if n not in drop]
    yield from parquet.iter_batches(columns=columns)


@dataclass(frozen=True)
class PartJob:
    """One data file to write from one file of rows; a plain value (a Spark task gets it pickled)."""

    source: Path | str  # a local Parquet file (the run's own output), or a key in the bucket
    key: str  # the data file's key, under iceberg/<name>/data/ (a fresh name: never overwritten)
    names: dict[str, str]  # pipeline column -> Iceberg column
    target: pa.Schema  # the table's data file schema (arrow_schema: field ids)
    drop: tuple[str, ...] = ()  # source columns left out (the hash columns of a snapshot file)
    inserts_at: datetime | None = None  # the full load's rows as inserts at this time (the change stream's first)


def write_part(store: S3Store, job: PartJob, work: Path) -> PartFile | None:
    """Writes ``job``'s data file and uploads it; None when the source holds no rows (nothing written).
    A source in the bucket is downloaded to ``work`` first, and removed after."""
    name = uuid.uuid4().hex
    downloaded = not isinstance(job.source, Path)
    source = store.download_file(str(job.source), work / f"{name}-in.parquet") if downloaded else Path(job.source)
    out = work / f"{name}-iceberg.parquet"
    try:
        batches: Iterable[pa.RecordBatch | pa.Table] = parquet_batches(source, drop=job.drop)
        if job.inserts_at is not None:
            batches = as_inserts(batches, job.inserts_at)
        rows = _write(batches, job.names, job.target, out)
        if not rows:
            return None
        store.upload_file(out, job.key, PARQUET)
        return PartFile(job.key, rows, out.stat().st_size)
    finally:
        out.unlink(missing_ok=True)
        if downloaded:
            source.unlink(missing_ok=True)


def with_change_columns(schema: pa.Schema) -> pa.Schema:
    """A full load's schema as the change stream's: with the operation and its time."""
    return schema.append(pa.field(CDC_OPERATION, pa.string())).append(
        pa.field(CDC_TIMESTAMP, pa.timestamp("us", tz="UTC"))
    )


def as_inserts(batches: Iterable[pa.RecordBatch | pa.Table], at: datetime) -> Iterator[pa.Table]:
    """The full load's rows as the change stream's first change set: inserts at the snapshot's time."""
    for batch in batches:
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        count = table.num_rows
        table = table.append_column(CDC_OPERATION, pa.repeat(pa.scalar("I", pa.string()), count))
        yield table.append_column(CDC_TIMESTAMP, pa.repeat(pa.scalar(at, pa.timestamp("us", tz="UTC")), count))


def source_schema(store: S3Store, source: Path | str) -> pa.Schema:
    """The Arrow schema of a file of rows (a local file, or a key in the bucket: its footer only)."""
    if isinstance(source, Path):
        return pq.read_schema(source)
    return footer(store, source)[0].schema.to_arrow_schema()


def footer(store: S3Store, key: str) -> tuple[pq.FileMetaData, int]:
    tail = store.get_tail(key, FOOTER_PROBE)
    if tail is None:
        raise PartFileError(f"s3://{store.bucket}/{key} does not exist (listed for an Iceberg commit)")
    body, size = tail
    footer_length = int.from_bytes(body[-8:-4], "little")
    if body[-4:] != b"PAR1" or footer_length + 8 > size:
        raise PartFileError(f"s3://{store.bucket}/{key} is not a Parquet file")
    if footer_length + 8 > len(body):
        body = store.get_range(key, size - footer_length - 8, size - 1)
    return pq.read_metadata(pa.BufferReader(b"PAR1" + body[-(footer_length + 8) :])), size


def _check_ids(metadata: pq.FileMetaData, schema: Schema, where: str) -> None:
    for field in metadata.schema.to_arrow_schema():
        raw = (field.metadata or {}).get(FIELD_ID)
        try:
            expected = schema.find_field(field.name).field_id
        except ValueError:
            raise PartFileError(f"{where}: column {field.name!r} is not in the Iceberg table's schema") from None
        if raw is None or int(raw) != expected:
            raise PartFileError(
                f"{where}: column {field.name!r} has field id {raw!r}, the table's is {expected} "
                "(write part files with snapcdc.cdc.iceberg.files.arrow_schema of the table)"
            )


def data_files(store: S3Store, metadata: TableMetadata, files: Sequence[PartFile]) -> list[DataFile]:
    """The Iceberg entries of uploaded data files, from their footers; a file of another schema or
    with rows other than listed is a :class:`PartFileError` (nothing is committed)."""
    schema = metadata.schema()
    stats_plan = compute_statistics_plan(schema, metadata.properties)
    id_mapping = parquet_path_to_id_mapping(schema)
    entries = []
    for part in files:
        where = f"s3://{store.bucket}/{part.key}"
        meta, size = footer(store, part.key)
        _check_ids(meta, schema, where)
        if meta.num_rows != part.rows:
            raise PartFileError(f"{where}: {meta.num_rows} rows, listed with {part.rows}")
        statistics = data_file_statistics_from_parquet_metadata(
            parquet_metadata=meta, stats_columns=stats_plan, parquet_column_mapping=id_mapping
        )
        entries.append(
            DataFile.from_args(
                content=DataFileContent.DATA,
                file_path=f"s3://{store.bucket}/{part.key}",
                file_format=FileFormat.PARQUET,
                partition=statistics.partition(metadata.spec(), schema),
                file_size_in_bytes=size,
                sort_order_id=None,
                spec_id=metadata.default_spec_id,
                equality_ids=None,
                key_metadata=None,
                **statistics.to_serialized_dict(),
            )
        )
    return entries
