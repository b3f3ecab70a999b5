"""The driver's side of a Spark run: it holds the tasks' counts and file lists (never rows), checks
them, decides what needs the whole table, and commits.

* :func:`gathered`: the tasks' results checked (an input error stops the run, every bucket reported,
  every row of both inputs counted once) and the delete guard decided from the counts, before anything
  is committed;
* :func:`check_feeds`: the change set's and the feeds' files hold the rows the counts say;
* :func:`stale_keys` / :func:`remove_stale`: parts of this snapshot's outputs left by an earlier failed
  attempt (keys of this run's part templates it did not write now), removed before the record lists the
  files; never any other key;
* :func:`remove_scratch`: the diff tasks' scratch parts (the change set per bucket), once merged.

The run record, written last by the CDC stage, lists every file with its rows and bytes.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from snapcdc.engine.spec import DeleteGuardError, DiffStats, InputError, TableSpec, WrittenFile
from snapcdc.errors import SnapcdcError
from snapcdc.lake.store import S3Store
from snapcdc.spark.diff import PartResult


@dataclass(frozen=True)
class Gathered:
    """The tasks' results, checked: the run's counts and each output's part files (bucket order)."""

    stats: DiffStats
    files: dict[str, list[WrittenFile]]


class IncompleteRunError(SnapcdcError, RuntimeError):
    """The tasks' results do not account for the whole table: a lost partition, never a result (not
    permanent: the job's run fails and the next attempt runs the diff again)."""


def gathered(results: list[PartResult], buckets: int, new_rows: int, old_rows: int, spec: TableSpec) -> Gathered:
    """The run's counts and files from its tasks' results, after the checks that need the whole table
    (the delete guard among them: the tasks run with it off)."""
    errors = sorted((r.error for r in results if r.error), key=lambda e: (e[1] is None, e[1] or 0))
    if errors:
        raise InputError(*errors[0])
    if sorted(r.part for r in results) != list(range(buckets)):
        raise IncompleteRunError(f"spark diff incomplete: {len(results)} of {buckets} buckets reported")
    stats = DiffStats(**{name: sum(r.stats.get(name, 0) for r in results) for name in DiffStats.__dataclass_fields__})
    if stats.rows_new != new_rows or stats.rows_old != old_rows:
        raise IncompleteRunError(
            f"spark diff incomplete: buckets counted {stats.rows_new} new and {stats.rows_old} old rows,"
            f" the inputs hold {new_rows} and {old_rows}"
        )
    if stats.rows_old > 0 and not spec.allow_mass_delete and stats.deletes / stats.rows_old > spec.max_delete_ratio:
        raise DeleteGuardError(stats.deletes, stats.rows_old, spec.max_delete_ratio)
    files: dict[str, list[WrittenFile]] = {}
    for result in sorted(results, key=lambda r: r.part):
        for name, file in result.files.items():
            files.setdefault(name, []).append(file)
    return Gathered(stats, files)


def expected_feed_rows(stats: DiffStats, first: bool) -> dict[str, int]:
    """The rows each merged output holds, from the counts: the change set (a later snapshot's), the
    changelog (an update is two rows) and the DMS feed (a first snapshot's: its rows as inserts)."""
    if first:
        return {"changelog": stats.rows_snapshot, "dms": stats.rows_snapshot}
    changes = stats.inserts + stats.updates + stats.deletes
    return {"cdc": changes, "changelog": changes + stats.updates, "dms": changes}


def check_feeds(files: Mapping[str, list[WrittenFile]], stats: DiffStats, first: bool) -> None:
    """Each merged output's files hold the rows the counts say (a lost or doubled part is never committed)."""
    for name, rows in expected_feed_rows(stats, first).items():
        if name in files and sum(f.rows for f in files[name]) != rows:
            found = sum(f.rows for f in files[name])
            raise IncompleteRunError(f"spark run: {name} holds {found} rows, the diff counted {rows}")


def _pattern(template: str) -> re.Pattern[str]:
    head, _, tail = template.partition("{part:05d}")
    return re.compile(re.escape(head) + r"\d{5,}" + re.escape(tail) + "$")


def template_prefix(template: str) -> str:
    """The literal head of a part template: what to list to find its parts."""
    return template.partition("{part:05d}")[0]


def stale_keys(listed: Iterable[str], template: str, kept: Iterable[str]) -> list[str]:
    """The keys among ``listed`` that are parts of ``template`` (``…-part-{part:05d}.parquet``) and not
    in ``kept``: what an earlier attempt wrote and this one did not. Nothing else is ever named."""
    pattern, keep = _pattern(template), set(kept)
    return [key for key in listed if pattern.match(key) and key not in keep]


def remove_stale(store: S3Store, templates: Iterable[str], kept: Iterable[str]) -> list[str]:
    """Deletes the stale parts of each template (keys, not ``s3://``); returns what was deleted."""
    keep = set(kept)
    removed = []
    for template in templates:
        for key in stale_keys(store.list_keys(template_prefix(template)), template, keep):
            store.delete(key)
            removed.append(key)
    return removed


def remove_scratch(store: S3Store, prefix: str) -> int:
    """Deletes the run's scratch parts (every key under the snapshot's scratch prefix)."""
    keys = list(store.list_keys(prefix))
    for key in keys:
        store.delete(key)
    return len(keys)


__all__ = [
    "Gathered",
    "IncompleteRunError",
    "check_feeds",
    "expected_feed_rows",
    "gathered",
    "remove_scratch",
    "remove_stale",
    "stale_keys",
    "template_prefix",
]
