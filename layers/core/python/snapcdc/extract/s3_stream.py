"""Streaming S3 writes with bounded memory and no disk: a multipart writer (the seekable ranged reader it
pairs with is :class:`snapcdc.lake.s3_reader.S3RangeReader`).

:class:`S3Upload` takes bytes in any chunk size and sends them in parts of ``part_bytes`` (the last
one shorter). An object that fits in one part is a single ``PutObject`` when completed; a larger one
is ``CreateMultipartUpload``, one ``UploadPart`` per part and ``CompleteMultipartUpload``. Every
request carries a SHA-256 checksum that S3 verifies (per part for a multipart upload: the object then
has a checksum of the parts' checksums). :meth:`S3Upload.abort` (also on leaving its ``with`` block
with an exception) sends ``AbortMultipartUpload``, so no orphan parts are billed. At most one part is
held in memory.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
PART_BYTES = 8 * MIB  # S3 wants at least 5 MiB per part but the last; 10,000 parts: up to 78 GiB


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
