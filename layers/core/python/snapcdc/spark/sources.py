"""Where the Spark engine reads its inputs: a local file or an S3 object, by byte ranges, so that each
executor reads only its own segments. A :class:`Source` is a plain value (picklable): tasks reopen it.

Executors never see the driver's disk: a local file is named by its absolute path, and on a cluster
(any master but ``local[...]``) it is shipped to the executors through Spark's file server
(:func:`shipped`): a task reads its copy, the driver the original. Each executor process holds one S3
client (:func:`s3_client`), not one per ranged GET."""

from __future__ import annotations

import io
import os
import shutil
import uuid
from dataclasses import dataclass, replace
from functools import cache
from pathlib import Path
from typing import Any

from snapcdc.lake.s3_reader import S3RangeReader


@cache  # one client per process and endpoint: botocore clients are thread-safe, and costly to build
def s3_client(endpoint_url: str | None) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3"))


def in_task() -> bool:
    """Whether this code runs in a Spark task (on an executor), not on the driver."""
    from pyspark import TaskContext

    return TaskContext.get() is not None


@dataclass(frozen=True)
class Source:
    """``location``: a local path or ``s3://bucket/key``; ``endpoint_url``: an S3 endpoint (moto)."""

    location: str
    endpoint_url: str | None = None
    shipped: str | None = None  # the name of the local file's copy on the executors (SparkFiles)

    def __post_init__(self) -> None:
        if not self.is_s3:  # a relative path means the driver's working directory: never the executors'
            object.__setattr__(self, "location", str(Path(self.location).absolute()))

    @property
    def path(self) -> str:
        """The local file to open here: the executors' shipped copy in a task, else the location."""
        if self.shipped is not None and in_task():
            from pyspark import SparkFiles

            return SparkFiles.get(self.shipped)
        return self.location

    @property
    def is_s3(self) -> bool:
        return self.location.startswith("s3://")

    def _bucket_key(self) -> tuple[str, str]:
        bucket, _, key = self.location[len("s3://") :].partition("/")
        return bucket, key

    def _client(self) -> Any:
        return s3_client(self.endpoint_url)

    def size(self) -> int:
        if not self.is_s3:
            return Path(self.path).stat().st_size
        bucket, key = self._bucket_key()
        return int(self._client().head_object(Bucket=bucket, Key=key)["ContentLength"])

    def read(self, at: int, length: int) -> bytes:
        """``length`` bytes from ``at`` (fewer at the end of the object)."""
        if length <= 0:
            return b""
        if not self.is_s3:
            with open(self.path, "rb") as handle:
                return os.pread(handle.fileno(), length, at)
        bucket, key = self._bucket_key()
        body = self._client().get_object(Bucket=bucket, Key=key, Range=f"bytes={at}-{at + length - 1}")["Body"]
        return bytes(body.read())

    def open(self) -> io.BufferedReader:
        """A seekable binary file (S3: ranged reads), e.g. for a Parquet reader."""
        if not self.is_s3:
            return open(self.path, "rb")
        bucket, key = self._bucket_key()
        return io.BufferedReader(S3RangeReader(self._client(), bucket, key, self.size()), buffer_size=8 << 20)

    def fetch(self, path: Path) -> Path:
        """The whole object as a local file (only where the engine needs one, e.g. to name a bad line)."""
        if not self.is_s3:
            return Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        bucket, key = self._bucket_key()
        self._client().download_file(bucket, key, str(path))
        return path

    def fetch_prefix(self, path: Path, length: int) -> Path:
        """The first ``length`` bytes as a local file."""
        path.parent.mkdir(parents=True, exist_ok=True)
        if not self.is_s3:
            with open(self.path, "rb") as source, path.open("wb") as target:
                shutil.copyfileobj(io.BytesIO(source.read(length)), target)
            return path
        path.write_bytes(self.read(0, length))
        return path


def shipped(spark: Any, source: Source, folder: Path) -> Source:
    """``source`` readable by the executors: an S3 object as it is; a local file as it is on a local
    master (the driver's machine runs the tasks), else shipped to every executor through Spark's file
    server (under a name of its own in ``folder``: two inputs may share a base name)."""
    if source.is_s3 or str(spark.sparkContext.master).startswith("local"):
        return source
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{uuid.uuid4().hex[:12]}-{Path(source.location).name}"
    try:  # a link of its own name (Spark serves a symbolic link under its target's name)
        os.link(source.location, folder / name)
    except OSError:  # another file system: a copy
        shutil.copyfile(source.location, folder / name)
    spark.sparkContext.addFile(str(folder / name))
    return replace(source, shipped=name)
