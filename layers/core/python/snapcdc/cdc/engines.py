"""The stage's engine parameter: what diffs a table snapshot's raw object against its old snapshot.

The CDC function passes :class:`ArrowEngine` (the pure engine of :mod:`snapcdc.engine`, on files
downloaded to the work dir); the Glue job passes its Spark engine (:mod:`snapcdc.spark.job`). Either
writes its outputs into ``work / "out"`` and returns the engine's :class:`~snapcdc.engine.DiffOutcome`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

from snapcdc.engine import DiffOutcome, TableSpec, diff_files
from snapcdc.lake.output_files import download_output
from snapcdc.lake.store import S3Store


class CdcEngine(Protocol):
    def diff(
        self,
        store: S3Store,
        raw_key: str,
        old_keys: Sequence[str],
        spec: TableSpec,
        observed_at: datetime,
        work: Path,
    ) -> DiffOutcome:
        """The diff of ``raw_key`` against the old snapshot's files ``old_keys`` (its N files, in order; none:
        a first load), its files in ``work / "out"``."""
        ...


class ArrowEngine:
    """The CDC function's engine: both objects downloaded into ``work`` (the old snapshot's N files joined
    into one, :func:`~snapcdc.lake.output_files.download_output`), diffed with Arrow."""

    def diff(
        self,
        store: S3Store,
        raw_key: str,
        old_keys: Sequence[str],
        spec: TableSpec,
        observed_at: datetime,
        work: Path,
    ) -> DiffOutcome:
        new_path = store.download_file(raw_key, work / Path(raw_key).name)
        old_path = download_output(store, old_keys, work / "base.parquet").path if old_keys else None
        return diff_files(
            old=old_path,
            new=new_path,
            spec=spec,
            observed_at=observed_at,
            out_dir=work / "out",
            new_name=f"s3://{store.bucket}/{raw_key}",
        )
