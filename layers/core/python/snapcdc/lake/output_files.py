"""Reading an output as its N files (docs/design.md, "An output is N files").

A run record lists each output's files (:meth:`~snapcdc.lake.records.RunRecord.keys`): one for the CDC
function, a part per task for the Spark job. Every reader goes through here: :func:`read_output` gives
the N files as one Arrow table (small outputs: a change set, a feed), :func:`download_output` joins them
into one local Parquet file a row group at a time (a snapshot: never all rows in memory). Each file is
checked against the record that lists it (:func:`listed_file`): a missing part or a part whose rows
differ from the record's is an :class:`OutputFilesError` naming the key.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from botocore.exceptions import ClientError

from snapcdc.errors import SnapcdcError
from snapcdc.lake.records import OutputFile, RunRecord
from snapcdc.lake.store import S3Store


class OutputFilesError(SnapcdcError):
    """A file of an output is missing, unreadable or not as its run record lists it; names the key."""

    def __init__(self, bucket: str, key: str, what: str) -> None:
        self.key = key
        super().__init__(f"s3://{bucket}/{key} {what}")


def listed_file(record: RunRecord | None, key: str) -> OutputFile | None:
    """The record's entry for ``key`` (its rows and bytes); None when the record lists no such file
    (no record, or one written before files were listed)."""
    if record is None:
        return None
    for files in record.files.values():
        for file in files:
            if file.key == key:
                return file
    return None


@dataclass(frozen=True)
class JoinedOutput:
    """An output's files joined into one local file."""

    path: Path
    rows: int
    files: int


def _check_rows(store: S3Store, key: str, rows: int, record: RunRecord | None) -> None:
    listed = listed_file(record, key)
    if listed is not None and listed.rows != rows:
        raise OutputFilesError(store.bucket, key, f"has {rows} rows, its run record lists {listed.rows}")


def _parquet(store: S3Store, key: str, source: pa.NativeFile | Path) -> pq.ParquetFile:
    try:
        return pq.ParquetFile(source)
    except (pa.ArrowException, OSError) as error:
        raise OutputFilesError(store.bucket, key, f"cannot be read ({error})") from None


def read_output(store: S3Store, keys: Sequence[str], record: RunRecord | None = None) -> pa.Table:
    """An output's files as one Arrow table, in order (the first file's schema); each file's rows
    checked against ``record`` when it lists them."""
    if not keys:
        raise ValueError("an output has at least one file")
    tables = []
    for key in keys:
        body = store.get_bytes(key)
        if body is None:
            raise OutputFilesError(store.bucket, key, "is missing")
        parquet = _parquet(store, key, pa.BufferReader(body))
        try:
            table = parquet.read()
        except (pa.ArrowException, OSError) as error:
            raise OutputFilesError(store.bucket, key, f"cannot be read ({error})") from None
        _check_rows(store, key, table.num_rows, record)
        tables.append(table)
    if len(tables) == 1:
        return tables[0]
    schema = tables[0].schema
    return pa.concat_tables([t.cast(schema) for t in tables])


def _download(store: S3Store, key: str, path: Path) -> Path:
    try:
        return store.download_file(key, path)
    except ClientError:
        if not store.exists(key):
            raise OutputFilesError(store.bucket, key, "is missing") from None
        raise


def download_output(store: S3Store, keys: Sequence[str], path: Path, record: RunRecord | None = None) -> JoinedOutput:
    """An output's files as one local Parquet file at ``path``: one file downloaded as it is; N joined
    a row group at a time (memory holds one row group, the disk one part beside the joined file),
    with the first part's schema and metadata (a snapshot's hash signature)."""
    if not keys:
        raise ValueError("an output has at least one file")
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(keys) == 1:
        _download(store, keys[0], path)
        rows = _parquet(store, keys[0], path).metadata.num_rows
        _check_rows(store, keys[0], rows, record)
        return JoinedOutput(path, rows, 1)
    folder = Path(tempfile.mkdtemp(prefix=".parts-", dir=path.parent))
    writer: pq.ParquetWriter | None = None
    rows = 0
    try:
        for at, key in enumerate(keys):
            part = _parquet(store, key, _download(store, key, folder / f"part-{at:05d}.parquet"))
            _check_rows(store, key, part.metadata.num_rows, record)
            if writer is None:
                writer = pq.ParquetWriter(path, part.schema_arrow, compression="snappy")
            for group in range(part.num_row_groups):
                table = part.read_row_group(group)
                writer.write_table(table.cast(writer.schema))
                rows += table.num_rows
            part.close()
            (folder / f"part-{at:05d}.parquet").unlink()
    finally:
        if writer is not None:
            writer.close()
        shutil.rmtree(folder, ignore_errors=True)
    return JoinedOutput(path, rows, len(keys))
