"""The stage's engine parameter: what diffs a table snapshot's raw object against its old snapshot.

The CDC function passes :class:`ArrowEngine` (the pure engine of :mod:`snapcdc.engine`, on files
downloaded to the work dir): it writes its outputs into ``work / "out"``, and the stage uploads them.
The Glue job passes its Spark engine (:mod:`snapcdc.spark.job`), which writes in place: its tasks write
every output (and the feeds) at its final part keys, given by a :class:`Placement`, and the engine
returns the files it wrote by the run record's output names, each located by its key; the stage then
only records them (the run record last).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from snapcdc.engine import DiffOutcome, TableSpec, diff_files
from snapcdc.lake.output_files import download_output
from snapcdc.lake.store import S3Store


@dataclass(frozen=True)
class Placement:
    """Where an engine that writes in place puts one snapshot's outputs: per run record output name
    (snapshot, quarantine, cdc or full_load, changelog, dms), the output's single-file key, its parts
    beside it (:meth:`~snapcdc.lake.layout.Layout.part_key`); and the changelog's commit version."""

    keys: dict[str, str]
    commit_version: int


class CdcEngine(Protocol):
    @property
    def writes_in_place(self) -> bool:
        """Whether :meth:`diff` writes the outputs at their keys itself (it is given a placement)."""
        ...

    def diff(
        self,
        store: S3Store,
        raw_key: str,
        old_keys: Sequence[str],
        spec: TableSpec,
        observed_at: datetime,
        work: Path,
        placement: Placement | None = None,
    ) -> DiffOutcome:
        """The diff of ``raw_key`` against the old snapshot's files ``old_keys`` (its N files, in order; none:
        a first load): its files in ``work / "out"``, or at ``placement``'s keys."""
        ...


class ArrowEngine:
    """The CDC function's engine: both objects downloaded into ``work`` (the old snapshot's N files joined
    into one, :func:`~snapcdc.lake.output_files.download_output`), diffed with Arrow."""

    @property
    def writes_in_place(self) -> bool:
        return False

    def diff(
        self,
        store: S3Store,
        raw_key: str,
        old_keys: Sequence[str],
        spec: TableSpec,
        observed_at: datetime,
        work: Path,
        placement: Placement | None = None,
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
