"""The one seekable reader of an S3 object: a read-only file object through ranged GETs.

It is the interface :class:`zipfile.ZipFile` and Arrow's Parquet reader need (``seek``, ``tell``,
``read``). Each read served from outside its window fetches a new window with a ranged ``GetObject``:
``block_bytes`` from the position read, or, near the end of the object, its last ``tail_bytes``, where
a zip keeps its directory and a Parquet file its footer. A window already fetched (e.g. the tail read
together with the object's size) can be handed in as ``window``. Failed S3 reads raise
:class:`S3ReadError`, which is not an ``OSError``, so a caller can tell a transient S3 failure from a
corrupt file. Used by the extract (the Kaggle archive), the lake (Parquet footers) and the Spark job
(its inputs, by byte ranges).
"""

from __future__ import annotations

import errno
import io
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from snapcdc.errors import SnapcdcError

MIB = 1024 * 1024
BLOCK_BYTES = 8 * MIB
TAIL_BYTES = 64 * 1024  # the end record and central directory of an archive of a few hundred files; a footer


class S3ReadError(SnapcdcError):
    """A ranged read of an S3 object failed (transient as far as the extract knows: the event is retried)."""


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
        window: tuple[int, bytes] | None = None,
    ) -> None:
        super().__init__()
        if block_bytes < 1 or tail_bytes < 1:
            raise ValueError("block_bytes and tail_bytes must be positive")
        self.client, self.bucket, self.key, self.size = client, bucket, key, size
        self._block, self._tail = block_bytes, tail_bytes
        self._position = 0
        self._window_start, self._window = window if window is not None else (0, b"")
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
