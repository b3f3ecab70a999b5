"""Streaming S3 I/O with bounded memory and no disk: a multipart writer and a seekable ranged reader.

:class:`S3Upload` takes bytes in any chunk size and sends them in parts of ``part_bytes`` (the last
one shorter). An object that fits in one part is a single ``PutObject`` when completed; a larger one
is ``CreateMultipartUpload``, one ``UploadPart`` per part and ``CompleteMultipartUpload``. Every
request carries a SHA-256 checksum that S3 verifies (per part for a multipart upload: the object then
has a checksum of the parts' checksums). :meth:`S3Upload.abort` (also on leaving its ``with`` block
with an exception) sends ``AbortMultipartUpload``, so no orphan parts are billed. At most one part is
held in memory.

:class:`S3RangeReader` is a read-only, seekable file object over one object, the interface
:class:`zipfile.ZipFile` needs (``seek``, ``tell``, ``read``). Each read served from outside its
window fetches a new window with a ranged ``GetObject``: ``block_bytes`` from the position read, or,
near the end of the object, its last ``tail_bytes``, where a zip keeps its directory. Failed S3
reads raise :class:`S3ReadError`, which is not an ``OSError``, so a caller can tell a transient S3
failure from a corrupt file.
"""

from __future__ import annotations

import errno
import io
import logging
from types import TracebackType
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from snapcdc.errors import SnapcdcError

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
PART_BYTES = 8 * MIB  # S3 wants at least 5 MiB per part but the last; 10,000 parts: up to 78 GiB
BLOCK_BYTES = 8 * MIB
TAIL_BYTES = 64 * 1024  # the end record, and the central directory of an archive of a few hundred files


class S3ReadError(SnapcdcError):
    """A ranged read of an S3 object failed (transient as far as the extract knows: the event is retried)."""


class S3Upload:
    """One object written in parts; see the module docstring."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        *,
        content_type: str = "application/octet-stream",
        metadata: dict[str, str] | None = None,
        part_bytes: int = PART_BYTES,
    ) -> None:
        if part_bytes < 5 * MIB:
            raise ValueError("S3 parts are at least 5 MiB (all but the last)")
        self.client, self.bucket, self.key = client, bucket, key
        self._extra: dict[str, Any] = {"ContentType": content_type, "Metadata": dict(metadata or {})}
        self._part_bytes = part_bytes
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []
        self._done = False
        self.bytes_written = 0

    def write(self, data: bytes) -> int:
        if self._done:
            raise ValueError(f"the upload of {self.key} is already completed or aborted")
        self._buffer += data
        self.bytes_written += len(data)
        while len(self._buffer) >= self._part_bytes:
            self._send_part(bytes(self._buffer[: self._part_bytes]))
            del self._buffer[: self._part_bytes]
        return len(data)

    def complete(self) -> int:
        """Make the object visible (nothing is, before); returns its size."""
        if self._done:
            raise ValueError(f"the upload of {self.key} is already completed or aborted")
        if self._upload_id is None:
            self.client.put_object(
                Bucket=self.bucket, Key=self.key, Body=bytes(self._buffer), ChecksumAlgorithm="SHA256", **self._extra
            )
        else:
            if self._buffer:
                self._send_part(bytes(self._buffer))
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=self.key, UploadId=self._upload_id, MultipartUpload={"Parts": self._parts}
            )
        self._buffer.clear()
        self._done = True
        return self.bytes_written

    def abort(self) -> None:
        """Drop what was sent (``AbortMultipartUpload``); nothing becomes visible. Safe to call twice."""
        self._buffer.clear()
        if self._done:
            return
        self._done = True
        if self._upload_id is not None:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self._upload_id)

    def __enter__(self) -> S3Upload:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if error is not None:
            try:
                self.abort()
            except Exception:  # the error that got us here matters more; the bucket's lifecycle rule cleans up
                logger.exception("could not abort the multipart upload of %s", self.key)

    def _send_part(self, body: bytes) -> None:
        if self._upload_id is None:
            response = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self.key, ChecksumAlgorithm="SHA256", **self._extra
            )
            self._upload_id = response["UploadId"]
        number = len(self._parts) + 1
        part = self.client.upload_part(
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self._upload_id,
            PartNumber=number,
            Body=body,
            ChecksumAlgorithm="SHA256",
        )
        self._parts.append({"PartNumber": number, "ETag": part["ETag"], "ChecksumSHA256": part["ChecksumSHA256"]})


class S3RangeReader(io.RawIOBase):
    """A read-only, seekable view of one S3 object (of known size) through ranged GETs; see the module docstring."""

    def __init__(
        self,
        client: Any,
        bucket: str,
        key: str,
        size: int,
        *,
        block_bytes: int = BLOCK_BYTES,
        tail_bytes: int = TAIL_BYTES,
    ) -> None:
        super().__init__()
        if block_bytes < 1 or tail_bytes < 1:
            raise ValueError("block_bytes and tail_bytes must be positive")
        self.client, self.bucket, self.key, self.size = client, bucket, key, size
        self._block, self._tail = block_bytes, tail_bytes
        self._position = 0
        self._window_start = 0
        self._window = b""
        self.requests = 0  # ranged GETs made
        self.bytes_fetched = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self.size + offset
        else:
            raise ValueError(f"invalid whence ({whence})")
        if position < 0:  # as a file does
            raise OSError(errno.EINVAL, f"negative seek position {position} in s3://{self.bucket}/{self.key}")
        self._position = position
        return position

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        wanted = min(len(view), max(self.size - self._position, 0))
        copied = 0
        while copied < wanted:
            offset = self._position - self._window_start
            if not 0 <= offset < len(self._window):
                self._fetch(self._position)
                offset = self._position - self._window_start
            count = min(wanted - copied, len(self._window) - offset)
            view[copied : copied + count] = self._window[offset : offset + count]
            copied += count
            self._position += count
        return copied

    def _fetch(self, position: int) -> None:
        near_end = position >= self.size - self._tail
        start = max(0, self.size - self._tail) if near_end else position
        end = min(self.size, max(start + self._block, position + 1))  # exclusive
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=self.key, Range=f"bytes={start}-{end - 1}")
            data: bytes = response["Body"].read()
        except (BotoCoreError, ClientError) as error:
            raise S3ReadError(f"ranged read of s3://{self.bucket}/{self.key} at {start} failed: {error}") from error
        if len(data) != end - start:
            raise S3ReadError(
                f"ranged read of s3://{self.bucket}/{self.key} bytes {start}-{end - 1} returned {len(data)} bytes"
                " (did the object change?)"
            )
        self.requests += 1
        self.bytes_fetched += len(data)
        self._window_start, self._window = start, data
