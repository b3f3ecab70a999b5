"""Where the Spark tasks put the files they write: each output's part files, named deterministically
from the run's target and the partition (bucket) number, so that a retried task or run rewrites the
same keys. A :class:`PartTarget` is a plain value (picklable): tasks place their own files.

The pipeline's target is the lake (``s3://`` keys from :class:`snapcdc.lake.layout.Layout`, in each
output's own prefix, flat, so the Glue tables read them as they are); ``snapcdc diff --engine spark``'s
is a local folder per output (``<out>/changes.parquet/part-00000.parquet``), which the executors must
share with the driver: the driver checks every file it is told of before it reports them.
"""

from __future__ import annotations

import contextlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from snapcdc.engine.parts import WrittenFile
from snapcdc.errors import SnapcdcError
from snapcdc.spark.sources import Source, s3_client


class OutputNotSharedError(SnapcdcError):
    """The executors wrote a part file the driver cannot see: the output folder is not shared."""


@dataclass(frozen=True)
class PartTarget:
    """Per output name, its part files' location with ``{part}`` in it (a local absolute path, or
    ``s3://bucket/key``); ``endpoint_url``: an S3 endpoint (moto)."""

    templates: dict[str, str] = field(default_factory=dict)
    endpoint_url: str | None = None

    @classmethod
    def folder(cls, out_dir: Path, names: tuple[str, ...]) -> PartTarget:
        base = Path(out_dir).absolute()
        return cls({name: str(base / f"{name}.parquet" / "part-{part:05d}.parquet") for name in names})

    def location(self, name: str, part: int) -> str:
        return self.templates[name].format(part=part)

    def folder_of(self, name: str) -> Path:
        """A local target's folder of ``name``'s parts."""
        return Path(self.templates[name]).parent

    def place(self, local: WrittenFile, name: str, part: int) -> WrittenFile:
        """The file a task wrote in its own scratch folder, moved to its part's location."""
        target = self.location(name, part)
        if target.startswith("s3://"):
            bucket, _, key = target[len("s3://") :].partition("/")
            s3_client(self.endpoint_url).upload_file(local.location, bucket, key)
            Path(local.location).unlink()
        else:
            Path(target).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(local.location, target)
        return WrittenFile(target, local.rows, local.bytes)

    def remove(self, files: list[WrittenFile]) -> None:
        """Deletes part files this run wrote (a refused or failed run commits nothing)."""
        for file in files:
            if file.location.startswith("s3://"):
                bucket, _, key = file.location[len("s3://") :].partition("/")
                s3_client(self.endpoint_url).delete_object(Bucket=bucket, Key=key)
            else:
                path = Path(file.location)
                path.unlink(missing_ok=True)
                with contextlib.suppress(OSError):  # its output's folder, once empty
                    path.parent.rmdir()

    def remove_parts(self, parts: int) -> None:
        """Deletes every part file a run of ``parts`` buckets may have written (a failed run's tasks
        report nothing: their files are found by their names)."""
        locations = [self.location(name, part) for name in self.templates for part in range(parts)]
        s3 = [loc for loc in locations if loc.startswith("s3://")]
        self.remove([WrittenFile(loc, 0, 0) for loc in locations if not loc.startswith("s3://")])
        by_bucket: dict[str, list[str]] = {}
        for location in s3:
            bucket, _, key = location[len("s3://") :].partition("/")
            by_bucket.setdefault(bucket, []).append(key)
        for bucket, keys in by_bucket.items():
            for at in range(0, len(keys), 1000):
                objects = [{"Key": key} for key in keys[at : at + 1000]]
                s3_client(self.endpoint_url).delete_objects(Bucket=bucket, Delete={"Objects": objects, "Quiet": True})

    def check_seen(self, files: list[WrittenFile]) -> None:
        """Every local part file is visible here with the size its task reported."""
        for file in files:
            if file.location.startswith("s3://"):
                continue
            path = Path(file.location)
            if not path.is_file() or path.stat().st_size != file.bytes:
                raise OutputNotSharedError(
                    f"the executors wrote {file.location}, which the driver does not see: write the output to a "
                    "folder every executor and the driver share, or to s3://"
                )

    def source(self, file: WrittenFile) -> Source:
        return Source(file.location, self.endpoint_url)
