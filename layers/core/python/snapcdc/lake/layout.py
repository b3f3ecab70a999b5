"""The S3 key scheme: every key the pipeline reads or writes is built (and parsed) here.

Pure: no I/O. ``SNAP`` is the UTC time of the scheduled event, ``YYYYMMDDTHHMMSSZ``; a snapshot is
passed as its id or as a :class:`~snapcdc.lake.snapshot.Snapshot`. The top-level prefixes are named
once, here: the stack's IAM statements and the bucket's notification import them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeAlias

from snapcdc.lake.snapshot import Snapshot

# The bucket's top-level prefixes (under the deployment's data prefix).
RAW_PREFIX = "raw/"  # written by the extract: the source's CSVs as downloaded
ARCHIVES_PREFIX = "raw/_archives/"  # the Kaggle downloads (expired by the bucket's lifecycle)
MANIFESTS_PREFIX = "raw/_manifests/"  # the extract's manifests: a snapshot's raw objects are complete
CDC_PREFIX = "cdc/"
FULL_LOAD_PREFIX = "full-load/"
SNAPSHOTS_PREFIX = "snapshots/"
QUARANTINE_PREFIX = "quarantine/"
CHANGELOG_PREFIX = "changelog/"  # the change feeds (docs/design.md, "Change feeds")
SCD2_PREFIX = "scd2/"
DMS_PREFIX = "dms/"
RUNS_PREFIX = "_runs/"  # the run records, and the Spark job's claims
SPARK_PARTS_PREFIX = "_spark-parts/"  # the Spark diff tasks' scratch (each bucket's changes), merged, then deleted
ICEBERG_PREFIX = "iceberg/"  # the Iceberg tables (docs/iceberg.md): metadata/ and data/ of each, Iceberg's own
FEED_PREFIXES = (CHANGELOG_PREFIX, SCD2_PREFIX, DMS_PREFIX)
CLAIM_SUFFIX = ".glue.json"  # ``_runs/<table>/snapshot=<SNAP>.glue.json``: a snapshot claimed by the Spark job

PART_SUFFIX = (
    "-part-{part:05d}.parquet"  # an output written as N files: ``<its key without .parquet>-part-00007.parquet``
)

SnapshotRef: TypeAlias = str | Snapshot

SNAP_FORMAT = "%Y%m%dT%H%M%SZ"
_SNAP_RE = re.compile(r"^\d{8}T\d{6}Z$")
_PART_RE = re.compile(r"-part-\d{5,}\.parquet$")
_RAW_KEY_RE = re.compile(
    "^" + re.escape(RAW_PREFIX) + r"(?P<table>[a-z][a-z0-9_]*)/snapshot=(?P<snap>\d{8}T\d{6}Z)/(?P<file>[^/]+)$"
)


def snapshot_id(moment: datetime) -> str:
    """The snapshot id of a moment (naive datetimes are taken as UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime(SNAP_FORMAT)


def snapshot_time(snap: SnapshotRef) -> datetime:
    if isinstance(snap, Snapshot):
        return snap.time
    if not _SNAP_RE.match(snap):
        raise ValueError(f"not a snapshot id (expected YYYYMMDDTHHMMSSZ): {snap!r}")
    return datetime.strptime(snap, SNAP_FORMAT).replace(tzinfo=UTC)


def _stamp(snap: SnapshotRef) -> str:
    """``YYYYMMDD_HHMMSS``: how change files are named."""
    return snapshot_time(snap).strftime("%Y%m%d_%H%M%S")


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
        return self.key(f"{RAW_PREFIX}{table}/")

    def raw_key(self, table: str, snap: SnapshotRef, file: str) -> str:
        return self.key(f"{RAW_PREFIX}{table}/snapshot={snap}/{file}")

    def archive_key(self, snap: SnapshotRef, archive: str) -> str:
        """The Kaggle download of ``snap`` (``<dataset-slug>.zip``): not a table, not a ``.csv``."""
        return self.key(f"{ARCHIVES_PREFIX}snapshot={snap}/{archive}")

    def manifests_prefix(self) -> str:
        return self.key(MANIFESTS_PREFIX)

    def manifest_key(self, snap: SnapshotRef) -> str:
        return self.key(f"{MANIFESTS_PREFIX}snapshot={snap}.json")

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
        return self.key(f"{CDC_PREFIX}{table}/")

    def cdc_key(self, table: str, snap: SnapshotRef) -> str:
        return self.key(f"{CDC_PREFIX}{table}/{table}_{_stamp(snap)}.parquet")

    def full_load_prefix(self, table: str) -> str:
        return self.key(f"{FULL_LOAD_PREFIX}{table}/")

    def full_load_key(self, table: str) -> str:
        return self.key(f"{FULL_LOAD_PREFIX}{table}/{table}.parquet")

    def snapshot_prefix(self, table: str) -> str:
        return self.key(f"{SNAPSHOTS_PREFIX}{table}/")

    def snapshot_key(self, table: str, snap: SnapshotRef) -> str:
        return self.key(f"{SNAPSHOTS_PREFIX}{table}/snapshot={snap}/{table}.parquet")

    def quarantine_key(self, table: str, snap: SnapshotRef) -> str:
        return self.key(f"{QUARANTINE_PREFIX}{table}/snapshot={snap}/{table}.parquet")

    # the change feeds (docs/design.md, "Change feeds"), when the table enables them
    def changelog_prefix(self, table: str) -> str:
        return self.key(f"{CHANGELOG_PREFIX}{table}/")

    def changelog_key(self, table: str, snap: SnapshotRef) -> str:
        return self.key(f"{CHANGELOG_PREFIX}{table}/{table}_{_stamp(snap)}.parquet")

    def scd2_prefix(self, table: str) -> str:
        return self.key(f"{SCD2_PREFIX}{table}/")

    def scd2_current_key(self, table: str) -> str:
        """The table's current versions (``valid_to`` null), rewritten by each accepted snapshot."""
        return self.key(f"{SCD2_PREFIX}{table}/{table}_current.parquet")

    def scd2_closed_key(self, table: str, snap: SnapshotRef) -> str:
        """The versions that ``snap`` closed (``valid_to`` = SNAP), written once."""
        return self.key(f"{SCD2_PREFIX}{table}/{table}_closed_{_stamp(snap)}.parquet")

    def is_scd2_key(self, table: str, key: str) -> bool:
        """Whether ``key`` is one the SCD2 history of ``table`` writes: its current file or the closed
        versions of a snapshot (or a part of either)."""
        whole = self.whole_key(key)
        closed = re.escape(self.key(f"{SCD2_PREFIX}{table}/{table}_closed_")) + r"\d{8}_\d{6}\.parquet"
        return whole == self.scd2_current_key(table) or re.fullmatch(closed, whole) is not None

    def dms_prefix(self, table: str) -> str:
        return self.key(f"{DMS_PREFIX}{table}/")

    def dms_load_key(self, table: str) -> str:
        """The full load, as DMS names its first full-load file."""
        return self.key(f"{DMS_PREFIX}{table}/LOAD00000001.parquet")

    def dms_cdc_key(self, table: str, snap: SnapshotRef) -> str:
        """A change file, named by time as DMS names them: ``yyyyMMdd-HHmmssSSS.parquet``."""
        moment = snapshot_time(snap)
        return self.key(
            f"{DMS_PREFIX}{table}/{moment.strftime('%Y%m%d-%H%M%S')}{moment.microsecond // 1000:03d}.parquet"
        )

    # the Iceberg tables (snapcdc.cdc.iceberg)
    def iceberg_prefix(self, iceberg_table: str) -> str:
        return self.key(f"{ICEBERG_PREFIX}{iceberg_table}/")

    def iceberg_data_key(self, iceberg_table: str, name: str) -> str:
        return self.key(f"{ICEBERG_PREFIX}{iceberg_table}/data/{name}")

    @staticmethod
    def part_template(key: str) -> str:
        """An output's key as the template of its N part files (``{part}`` to format): same prefix, flat,
        so the Glue tables read them as they are. ``cdc/t/t_20250101_000000.parquet`` ->
        ``cdc/t/t_20250101_000000-part-{part:05d}.parquet``."""
        if not key.endswith(".parquet"):
            raise ValueError(f"not a Parquet output key: {key!r}")
        return key[: -len(".parquet")] + PART_SUFFIX

    @classmethod
    def part_key(cls, key: str, part: int) -> str:
        """Part ``part`` of the output whose single-file key is ``key``."""
        return cls.part_template(key).format(part=part)

    @staticmethod
    def whole_key(key: str) -> str:
        """The single-file key of an output a part key belongs to (``…/x-part-00003.parquet`` ->
        ``…/x.parquet``); any other key as it is."""
        return _PART_RE.sub(".parquet", key)

    @staticmethod
    def is_part(key: str) -> bool:
        """Whether ``key`` names a part of an output written as N files."""
        return _PART_RE.search(key) is not None

    def spark_parts_prefix(self, table: str, snap: str) -> str:
        """Where the Spark job's diff tasks write a snapshot's scratch (each bucket's changes and
        pre-images) before merge tasks write the change set and feeds from them at their keys (deleted
        then; a failed run's are rewritten by its retry)."""
        return self.key(f"{SPARK_PARTS_PREFIX}{table}/snapshot={snap}/")

    def runs_prefix(self, table: str) -> str:
        return self.key(f"{RUNS_PREFIX}{table}/")

    def run_record_key(self, table: str, snap: SnapshotRef) -> str:
        return self.key(f"{RUNS_PREFIX}{table}/snapshot={snap}.json")

    def claim_key(self, table: str, snap: SnapshotRef) -> str:
        """The Spark job's claim of a table snapshot (:mod:`snapcdc.lake.ledger`): beside its run record."""
        return self.key(f"{RUNS_PREFIX}{table}/snapshot={snap}{CLAIM_SUFFIX}")

    @staticmethod
    def is_claim(key: str) -> bool:
        """Whether a key under a table's ``_runs/`` is a claim (not a run record)."""
        return key.endswith(CLAIM_SUFFIX)


def snap_from_partition(name: str) -> str | None:
    """``snapshot=<SNAP>`` (optionally with a ``.json`` suffix or trailing slash) -> SNAP."""
    match = re.search(r"snapshot=(\d{8}T\d{6}Z)", name)
    return match.group(1) if match else None
