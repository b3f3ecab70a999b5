"""The Iceberg tables' data files: written once, under the table's own prefix, then listed by a commit.

A data file of an Iceberg table is a Parquet file whose columns carry the table's field ids
(``PARQUET:field_id``), so a rename or a retired column never changes what a file means. The files
are the tables' own (``iceberg/<table>/data/snapshot=<SNAP>/<uuid>.parquet``): the pipeline's
``snapshots/``, ``cdc/`` and ``full-load/`` files are rewritten by the schema migration
(:mod:`snapcdc.cdc.migrate`) when a column widens, and a file Iceberg's metadata lists must never
change, so Iceberg never lists them and the migration never lists ``iceberg/``.

:func:`write_rows` writes a local file in a table's schema from the pipeline's rows (streamed by
batch, so a 10M-row snapshot is never in memory at once); :func:`data_files` turns uploaded files,
the Lambda's one or the Glue job's part files alike, into Iceberg ``DataFile`` entries from their
Parquet footers (one ranged GET each): the metadata-only half of a commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
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
    target = arrow_schema(schema)
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


def _footer(store: S3Store, key: str) -> tuple[pq.FileMetaData, int]:
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
        footer, size = _footer(store, part.key)
        _check_ids(footer, schema, where)
        if footer.num_rows != part.rows:
            raise PartFileError(f"{where}: {footer.num_rows} rows, listed with {part.rows}")
        statistics = data_file_statistics_from_parquet_metadata(
            parquet_metadata=footer, stats_columns=stats_plan, parquet_column_mapping=id_mapping
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
