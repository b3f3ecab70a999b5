"""Where the Spark engine reads its inputs: a local file or an S3 object, by byte ranges, so that each
executor reads only its own segments. A :class:`Source` is a plain value (picklable): tasks reopen it."""

from __future__ import annotations

import io
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snapcdc.lake.s3_reader import S3RangeReader


@dataclass(frozen=True)
class Source:
    """``location``: a local path or ``s3://bucket/key``; ``endpoint_url``: an S3 endpoint (moto)."""

    location: str
    endpoint_url: str | None = None

    @property
    def is_s3(self) -> bool:
        return self.location.startswith("s3://")

    def _bucket_key(self) -> tuple[str, str]:
        bucket, _, key = self.location[len("s3://") :].partition("/")
        return bucket, key

    def _client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3"))

    def size(self) -> int:
        if not self.is_s3:
            return Path(self.location).stat().st_size
        bucket, key = self._bucket_key()
        return int(self._client().head_object(Bucket=bucket, Key=key)["ContentLength"])

    def read(self, at: int, length: int) -> bytes:
        """``length`` bytes from ``at`` (fewer at the end of the object)."""
        if length <= 0:
            return b""
        if not self.is_s3:
            with open(self.location, "rb") as handle:
                return os.pread(handle.fileno(), length, at)
        bucket, key = self._bucket_key()
        body = self._client().get_object(Bucket=bucket, Key=key, Range=f"bytes={at}-{at + length - 1}")["Body"]
        return bytes(body.read())

    def open(self) -> io.BufferedReader:
        """A seekable binary file (S3: ranged reads), e.g. for a Parquet reader."""
        if not self.is_s3:
            return open(self.location, "rb")
        bucket, key = self._bucket_key()
        return io.BufferedReader(S3RangeReader(self._client(), bucket, key, self.size()), buffer_size=8 << 20)

    def fetch(self, path: Path) -> Path:
        """The whole object as a local file (only where the engine needs one, e.g. to name a bad line)."""
        if not self.is_s3:
            return Path(self.location)
        path.parent.mkdir(parents=True, exist_ok=True)
        bucket, key = self._bucket_key()
        self._client().download_file(bucket, key, str(path))
        return path

    def fetch_prefix(self, path: Path, length: int) -> Path:
        """The first ``length`` bytes as a local file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.is_s3:
            with open(self.location, "rb") as source, path.open("wb") as target:
                shutil.copyfileobj(io.BytesIO(source.read(length)), target)
            return path
        path.write_bytes(self.read(0, length))
        return path
