"""S3 access for the pipeline: a thin layer over a boto3 S3 client passed in by the caller.

Everything here is plain object I/O under one bucket and a :class:`~snapcdc.lake.layout.Layout`;
no pipeline logic. Uploads carry a SHA-256 checksum that S3 verifies.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from snapcdc.lake.layout import Layout, snap_from_partition
from snapcdc.lake.s3_reader import TAIL_BYTES, S3RangeReader

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.parquet as pq

PARQUET = "application/vnd.apache.parquet"  # the content type of the Parquet objects
_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
# A conditional put that lost: the object exists, or another conditional write of it is under way.
_PRECONDITION = {"PreconditionFailed", "ConditionalRequestConflict"}


def _is_not_found(error: ClientError) -> bool:
    return str(error.response.get("Error", {}).get("Code")) in _NOT_FOUND


@dataclass(frozen=True)
class VersionedObject:
    body: bytes
    etag: str
    last_modified: datetime


@dataclass(frozen=True)
class S3Store:
    client: Any  # a boto3 S3 client
    bucket: str
    layout: Layout = field(default_factory=Layout)

    # -- objects ---------------------------------------------------------------------------
    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def get_bytes(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _is_not_found(error):
                return None
            raise
        body: bytes = response["Body"].read()
        return body

    def get_tail(self, key: str, size: int) -> tuple[bytes, int] | None:
        """The last ``size`` bytes of an object (all of it if smaller) and its total size, in one
        ranged GET; None if it does not exist."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=-{size}")
        except ClientError as error:
            if _is_not_found(error):
                return None
            raise
        body: bytes = response["Body"].read()
        content_range = str(response.get("ContentRange") or "")
        total = int(content_range.rsplit("/", 1)[1]) if "/" in content_range else len(body)
        return body, total

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes ``start`` to ``end`` (inclusive) of an object."""
        response = self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end}")
        body: bytes = response["Body"].read()
        return body

    def size(self, key: str) -> int | None:
        """An object's size in bytes; None if it does not exist."""
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _is_not_found(error):
                return None
            raise
        return int(response["ContentLength"])

    def reader(self, key: str, size: int, window: tuple[int, bytes] | None = None) -> S3RangeReader:
        """A seekable, read-only file over an object of ``size`` bytes (ranged GETs)."""
        return S3RangeReader(self.client, self.bucket, key, size, window=window)

    def parquet_schema(self, key: str) -> pa.Schema | None:
        """The Arrow schema (with its key-value metadata) of a Parquet object, from its footer; None if
        absent. One ranged GET of the tail when the footer fits in it. Raises ``pyarrow.ArrowInvalid``
        or ``OSError`` when the object is not a Parquet file."""
        import pyarrow.parquet as pq

        footer = self._footer_file(key)
        return None if footer is None else pq.read_schema(footer)

    def parquet_metadata(self, key: str) -> pq.FileMetaData | None:
        """A Parquet object's footer (its rows, row groups and schema); None if absent. As
        :meth:`parquet_schema`: one ranged GET of the tail when the footer fits in it."""
        import pyarrow.parquet as pq

        footer = self._footer_file(key)
        return None if footer is None else pq.read_metadata(footer)

    def _footer_file(self, key: str) -> pa.PythonFile | None:
        import pyarrow as pa  # only the CDC side reads Parquet: the extract's imports stay light

        found = self.get_tail(key, TAIL_BYTES)
        if found is None:
            return None
        tail, size = found
        reader = self.reader(key, size, window=(size - len(tail), tail))
        return pa.PythonFile(reader, mode="r")

    def put_bytes(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> None:
        self.client.put_object(
            Bucket=self.bucket,
            Key=key,
            Body=body,
            ContentType=content_type,
            ChecksumAlgorithm="SHA256",
        )

    def put_if_absent(self, key: str, body: bytes, content_type: str = "application/octet-stream") -> bool:
        """Creates the object unless it exists (S3 conditional put, ``If-None-Match: *``); whether this
        call created it."""
        try:
            self.client.put_object(
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentType=content_type,
                IfNoneMatch="*",
            )
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code")) in _PRECONDITION:
                return False
            raise
        return True

    def put_if_match(self, key: str, body: bytes, etag: str, content_type: str = "application/json") -> str | None:
        """Replaces the object if it is still the version ``etag`` names (S3 conditional put, ``If-Match``);
        the new ETag, or None when the object changed or went meanwhile (another writer won)."""
        try:
            response = self.client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, IfMatch=etag
            )
        except ClientError as error:
            if str(error.response.get("Error", {}).get("Code")) in _PRECONDITION or _is_not_found(error):
                return None
            raise
        return str(response["ETag"])

    def get_versioned(self, key: str) -> VersionedObject | None:
        """The object's bytes with its ETag and last-modified time (for a later :meth:`put_if_match`)."""
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _is_not_found(error):
                return None
            raise
        return VersionedObject(response["Body"].read(), str(response["ETag"]), response["LastModified"])

    def upload_file(self, path: Path, key: str, content_type: str = "application/octet-stream") -> None:
        self.client.upload_file(
            str(path),
            self.bucket,
            key,
            ExtraArgs={"ContentType": content_type, "ChecksumAlgorithm": "SHA256"},
        )

    def upload_file_with_metadata(
        self,
        path: Path,
        key: str,
        metadata: dict[str, str],
        content_type: str = "application/octet-stream",
    ) -> None:
        """Like :meth:`upload_file`, plus user metadata (``x-amz-meta-*``) on the object."""
        self.client.upload_file(
            str(path),
            self.bucket,
            key,
            ExtraArgs={"ContentType": content_type, "ChecksumAlgorithm": "SHA256", "Metadata": metadata},
        )

    def head_metadata(self, key: str) -> dict[str, str] | None:
        """The user metadata of an object, or None if it does not exist."""
        try:
            response = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if _is_not_found(error):
                return None
            raise
        metadata: dict[str, str] = response.get("Metadata", {})
        return metadata

    def download_file(self, key: str, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.client.download_file(self.bucket, key, str(path))
        return path

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)

    # -- listings --------------------------------------------------------------------------
    def list_keys(self, prefix: str) -> Iterator[str]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]

    def list_folders(self, prefix: str) -> list[str]:
        """The immediate sub-folders of ``prefix`` (which ends with '/')."""
        paginator = self.client.get_paginator("list_objects_v2")
        folders: list[str] = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/"):
            folders.extend(item["Prefix"] for item in page.get("CommonPrefixes", []))
        return folders

    def raw_snapshots(self, table: str) -> list[str]:
        """Snapshot ids that have a raw file for ``table``, oldest first."""
        snaps = {snap_from_partition(f) for f in self.list_folders(self.layout.raw_table_prefix(table))}
        return sorted(s for s in snaps if s)

    def manifest_snapshots(self) -> list[str]:
        """Snapshot ids with a written manifest, oldest first."""
        snaps = {snap_from_partition(k) for k in self.list_keys(self.layout.manifests_prefix())}
        return sorted(s for s in snaps if s)
