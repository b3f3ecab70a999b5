"""The S3 key scheme: every key the pipeline reads or writes is built (and parsed) here.

Pure: no I/O. ``SNAP`` is the UTC time of the scheduled event, ``YYYYMMDDTHHMMSSZ``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

SNAP_FORMAT = "%Y%m%dT%H%M%SZ"
_SNAP_RE = re.compile(r"^\d{8}T\d{6}Z$")
_RAW_KEY_RE = re.compile(r"^raw/(?P<table>[a-z][a-z0-9_]*)/snapshot=(?P<snap>\d{8}T\d{6}Z)/(?P<file>[^/]+)$")


def snapshot_id(moment: datetime) -> str:
    """The snapshot id of a moment (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(SNAP_FORMAT)


def snapshot_time(snap: str) -> datetime:
    if not _SNAP_RE.match(snap):
        raise ValueError(f"not a snapshot id (expected YYYYMMDDTHHMMSSZ): {snap!r}")
    return datetime.strptime(snap, SNAP_FORMAT).replace(tzinfo=UTC)


@dataclass(frozen=True)
class RawObject:
    table: str
    snap: str
    file: str


@dataclass(frozen=True)
class Layout:
    """Keys under an optional prefix (no leading or trailing slash)."""

    prefix: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", self.prefix.strip("/"))

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def relative(self, key: str) -> str:
        if not self.prefix:
            return key
        head = self.prefix + "/"
        if not key.startswith(head):
            raise ValueError(f"key {key!r} is outside prefix {self.prefix!r}")
        return key[len(head) :]

    # raw/ (written by extract)
    def raw_table_prefix(self, table: str) -> str:
        return self.key(f"raw/{table}/")

    def raw_key(self, table: str, snap: str, file: str) -> str:
        return self.key(f"raw/{table}/snapshot={snap}/{file}")

    def archive_key(self, snap: str, archive: str) -> str:
        """The Kaggle download of ``snap`` (``<dataset-slug>.zip``): not a table, not a ``.csv``."""
        return self.key(f"raw/_archives/snapshot={snap}/{archive}")

    def manifests_prefix(self) -> str:
        return self.key("raw/_manifests/")

    def manifest_key(self, snap: str) -> str:
        return self.key(f"raw/_manifests/snapshot={snap}.json")

    def parse_raw_key(self, key: str) -> RawObject | None:
        """The table, snapshot and file of a raw CSV key; None for any other key."""
        try:
            match = _RAW_KEY_RE.match(self.relative(key))
        except ValueError:
            return None
        if match is None or not match["file"].lower().endswith(".csv"):
            return None
        return RawObject(match["table"], match["snap"], match["file"])

    # written by cdc
    def cdc_prefix(self, table: str) -> str:
        return self.key(f"cdc/{table}/")

    def cdc_key(self, table: str, snap: str) -> str:
        stamp = snapshot_time(snap).strftime("%Y%m%d_%H%M%S")
        return self.key(f"cdc/{table}/{table}_{stamp}.parquet")

    def full_load_prefix(self, table: str) -> str:
        return self.key(f"full-load/{table}/")

    def full_load_key(self, table: str) -> str:
        return self.key(f"full-load/{table}/{table}.parquet")

    def snapshot_prefix(self, table: str) -> str:
        return self.key(f"snapshots/{table}/")

    def snapshot_key(self, table: str, snap: str) -> str:
        return self.key(f"snapshots/{table}/snapshot={snap}/{table}.parquet")

    def quarantine_key(self, table: str, snap: str) -> str:
        return self.key(f"quarantine/{table}/snapshot={snap}/{table}.parquet")

    # the change feeds (docs/design.md, "Change feeds"), when the table enables them
    def changelog_prefix(self, table: str) -> str:
        return self.key(f"changelog/{table}/")

    def changelog_key(self, table: str, snap: str) -> str:
        stamp = snapshot_time(snap).strftime("%Y%m%d_%H%M%S")
        return self.key(f"changelog/{table}/{table}_{stamp}.parquet")

    def scd2_prefix(self, table: str) -> str:
        return self.key(f"scd2/{table}/")

    def scd2_current_key(self, table: str) -> str:
        """The table's current versions (``valid_to`` null), rewritten by each accepted snapshot."""
        return self.key(f"scd2/{table}/{table}_current.parquet")

    def scd2_closed_key(self, table: str, snap: str) -> str:
        """The versions that ``snap`` closed (``valid_to`` = SNAP), written once."""
        stamp = snapshot_time(snap).strftime("%Y%m%d_%H%M%S")
        return self.key(f"scd2/{table}/{table}_closed_{stamp}.parquet")

    def dms_prefix(self, table: str) -> str:
        return self.key(f"dms/{table}/")

    def dms_load_key(self, table: str) -> str:
        """The full load, as DMS names its first full-load file."""
        return self.key(f"dms/{table}/LOAD00000001.parquet")

    def dms_cdc_key(self, table: str, snap: str) -> str:
        """A change file, named by time as DMS names them: ``yyyyMMdd-HHmmssSSS.parquet``."""
        moment = snapshot_time(snap)
        return self.key(f"dms/{table}/{moment.strftime('%Y%m%d-%H%M%S')}{moment.microsecond // 1000:03d}.parquet")

    def spark_parts_prefix(self, table: str, snap: str) -> str:
        """Where the Spark job's tasks write a snapshot's part files before the driver joins them into
        the outputs' keys (deleted then; a failed run's are rewritten by its retry)."""
        return self.key(f"_spark-parts/{table}/snapshot={snap}/")

    def runs_prefix(self, table: str) -> str:
        return self.key(f"_runs/{table}/")

    def run_record_key(self, table: str, snap: str) -> str:
        return self.key(f"_runs/{table}/snapshot={snap}.json")


def snap_from_partition(name: str) -> str | None:
    """``snapshot=<SNAP>`` (optionally with a ``.json`` suffix or trailing slash) -> SNAP."""
    match = re.search(r"snapshot=(\d{8}T\d{6}Z)", name)
    return match.group(1) if match else None
