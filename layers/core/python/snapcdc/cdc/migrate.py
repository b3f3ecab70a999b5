"""One physical schema per table: earlier Parquet files brought to the schema of an accepted snapshot.

The engine widens a column when its values no longer fit (an int column gets ``12a``: string) and
appends a column that appears. Without this module the table's earlier files keep the old types,
and Athena (or any reader applying the table's declared schema) fails on every query. After an
accepted snapshot's outputs are written and before its run record, :func:`migrate_table` rewrites
every earlier file of the table (``full-load/<t>/<t>.parquet``, ``cdc/<t>/*.parquet``,
``snapshots/<t>/snapshot=*/<t>.parquet``, and each part of an output written as N files) whose footer
schema differs from the new one:

- columns converted with the engine's own conversion (:func:`snapcdc.engine.schema.conform`): the
  values are unchanged, a value that cannot convert is a :class:`MigrationError`, never a null;
- columns the file lacks appended as nulls where the engine puts them (the schema's order: known
  columns first, new ones after);
- the pipeline's own columns kept as they are (``_cdc_operation``/``_cdc_timestamp`` of a change file,
  the hash columns of a snapshot file), and the file's key-value metadata kept: a snapshot's hash
  signature still describes the old types, so the next diff sees its hashes as stale and recomputes
  them from the converted rows;
- written with the codec and options the engine uses for that kind of file, and marked with the
  snapshot whose migration rewrote it (``snapcdc.migrated``).

State is the files themselves: a file whose footer already has the target schema is left alone, so
a migration interrupted half-way is completed by the retry (the run record is not written until it
is), and a retry lists the files its interrupted attempt rewrote by their mark. Cost: nothing when
the new schema equals the base run record's (the usual run); otherwise three listings, one ranged
GET of each file's last 64 KiB (its footer), and a GET and a PUT per file rewritten.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TypedDict

import pyarrow as pa
import pyarrow.parquet as pq

from snapcdc.engine.parquet_output import parquet_options
from snapcdc.engine.schema import conform_columns
from snapcdc.engine.sinks import SNAPSHOT_CODEC, SNAPSHOT_ROW_GROUP
from snapcdc.engine.spec import CDC_OPERATION, CDC_TIMESTAMP, HASH_COLUMNS
from snapcdc.errors import PermanentError
from snapcdc.lake.layout import Layout, snap_from_partition, snapshot_time
from snapcdc.lake.store import S3Store

MIGRATED_METADATA = b"snapcdc.migrated"  # the snapshot whose migration last rewrote the file
PIPELINE_COLUMNS = (CDC_OPERATION, CDC_TIMESTAMP, *HASH_COLUMNS)

PARQUET = "application/vnd.apache.parquet"
_CDC_STAMP = re.compile(r"_(\d{8}_\d{6})\.parquet$")
_DMS_STAMP = re.compile(r"/(\d{8}-\d{6})\d{3}\.parquet$")


@cache
def kind_columns() -> dict[str, tuple[str, ...]]:
    """The columns a kind of file adds to the table's (the change feeds': docs/design.md, "Change feeds")."""
    # The feeds are imported here, by a migration, not by every run's import of this module (cold start).
    from snapcdc.cdc.feeds import FEED_COLUMNS

    return {
        "snapshot": HASH_COLUMNS,
        "full_load": (),
        "cdc": (CDC_OPERATION, CDC_TIMESTAMP),
        **{kind: tuple(f.name for f in fields) for kind, fields in FEED_COLUMNS.items()},
        "dms_load": tuple(f.name for f in FEED_COLUMNS["dms"]),
    }


class MigrationError(PermanentError):
    """A file of the table cannot be brought to the table's schema; the message names the key."""


@dataclass(frozen=True)
class TableFile:
    key: str
    kind: str  # full_load, cdc, snapshot, changelog, scd2, dms, dms_load
    snapshot: str | None  # the snapshot it belongs to (None: the full load, the first one)


def data_schema(schema: pa.Schema, kind: str | None = None) -> pa.Schema:
    """The table's columns of a file's schema: without the pipeline's own columns and metadata
    (those of ``kind``; None: those of the engine's files)."""
    own = PIPELINE_COLUMNS if kind is None else kind_columns()[kind]
    return pa.schema([f for f in schema if f.name not in own])


def same_columns(file_schema: pa.Schema, target: pa.Schema, kind: str | None = None) -> bool:
    """Whether a file's data columns are exactly ``target``'s: names, order and types."""
    data = data_schema(file_schema, kind)
    return data.names == target.names and all(a.type == b.type for a, b in zip(data, target, strict=True))


# -- the table's files ------------------------------------------------------------------------------
def table_files(store: S3Store, table: str, upto: str | None = None) -> Iterator[TableFile]:
    """Every Parquet file of ``table`` under snapshots/, full-load/ and cdc/ (of snapshots up to ``upto``),
    each part of an output written as N files as a file of its own (known by its whole key,
    :meth:`~snapcdc.lake.layout.Layout.whole_key`).

    Snapshots first, oldest first: the engine's own state (a base of the next diff) is settled before
    the user-facing files."""
    layout, whole = store.layout, Layout.whole_key
    for key in store.list_keys(layout.snapshot_prefix(table)):
        snap = snap_from_partition(key)
        if snap and whole(key) == layout.snapshot_key(table, snap) and (upto is None or snap <= upto):
            yield TableFile(key, "snapshot", snap)
    full_load = layout.full_load_key(table)
    for key in store.list_keys(layout.full_load_prefix(table)):
        if whole(key) == full_load:
            yield TableFile(key, "full_load", None)
    limit = snapshot_time(upto).strftime("%Y%m%d_%H%M%S") if upto else None
    for key in store.list_keys(layout.cdc_prefix(table)):
        stamp = _CDC_STAMP.search(whole(key))
        if stamp and (limit is None or stamp.group(1) <= limit):
            yield TableFile(key, "cdc", None)
    # The change feeds: files of a snapshot by their time; the SCD2 current file and the DMS full load always.
    for kind, prefix in (("changelog", layout.changelog_prefix(table)), ("scd2", layout.scd2_prefix(table))):
        for key in store.list_keys(prefix):
            stamp = _CDC_STAMP.search(whole(key))
            if whole(key) == layout.scd2_current_key(table) or (stamp and (limit is None or stamp.group(1) <= limit)):
                yield TableFile(key, kind, None)
    dms_limit = snapshot_time(upto).strftime("%Y%m%d-%H%M%S") if upto else None
    for key in store.list_keys(layout.dms_prefix(table)):
        stamp = _DMS_STAMP.search(whole(key))
        if whole(key) == layout.dms_load_key(table):
            yield TableFile(key, "dms_load", None)
        elif stamp and (dms_limit is None or stamp.group(1) <= dms_limit):
            yield TableFile(key, "dms", None)


def footer_schema(store: S3Store, key: str) -> pa.Schema | None:
    """The Arrow schema (with its key-value metadata) of a Parquet object, from its footer; None if absent."""
    try:
        return store.parquet_schema(key)
    except (pa.ArrowInvalid, OSError) as error:
        raise MigrationError(f"s3://{store.bucket}/{key} is not a readable Parquet file: {error}") from None


# -- bringing files to the schema ---------------------------------------------------------------------
@dataclass(frozen=True)
class _Plan:
    file: TableFile
    schema: pa.Schema  # the file's schema now


def _file_target(current: pa.Schema, target: pa.Schema, marker: str, kind: str) -> pa.Schema:
    """``target``'s columns, with the file's own pipeline columns where they were (those before its
    first data column, such as a DMS file's ``Op``, stay first); its metadata kept, the mark added."""
    own = kind_columns()[kind]
    leading = []
    for f in current:
        if f.name not in own:
            break
        leading.append(f)
    extra = [f for f in current if f.name in own and f not in leading]
    metadata = {**(current.metadata or {}), MIGRATED_METADATA: marker.encode()}
    metadata.pop(b"ARROW:schema", None)
    return pa.schema([*leading, *target, *extra], metadata=metadata)


def _shaped(rows: pa.Table, schema: pa.Schema, key: str) -> pa.Table:
    try:
        return conform_columns(rows, schema)
    except ValueError as error:
        raise MigrationError(f"{key}: {error}") from None


class _WriterSettings(TypedDict):
    codec: str
    indexed: list[str] | None  # columns given statistics (None: every data column)
    group_rows: int | None  # rows per row group (None: pyarrow's default)


def _writer_settings(
    kind: str, schema: pa.Schema, primary_key: Sequence[str], date_field: str | None
) -> _WriterSettings:
    """Codec, statistics and row group size as the engine writes that kind of file."""
    if kind == "snapshot":
        date = [date_field] if date_field is not None and date_field in schema.names else []
        return {"codec": SNAPSHOT_CODEC, "indexed": [*primary_key, *date], "group_rows": SNAPSHOT_ROW_GROUP * 2}
    if kind in ("full_load", "changelog", "scd2", "dms", "dms_load"):
        return {"codec": "snappy", "indexed": None, "group_rows": SNAPSHOT_ROW_GROUP * 2}
    return {"codec": "snappy", "indexed": None, "group_rows": None}  # a change set: write_parquet's


def _row_groups(parquet: pq.ParquetFile) -> Iterator[pa.Table | None]:
    """The file's row groups, one at a time (None once for a file without any)."""
    if parquet.num_row_groups == 0:
        yield None
    for group in range(parquet.num_row_groups):
        yield parquet.read_row_group(group)


def _rewrite(
    store: S3Store, plan: _Plan, schema: pa.Schema, primary_key: Sequence[str], date_field: str | None, work: Path
) -> None:
    key = plan.file.key
    local = store.download_file(key, work / "old.parquet")
    out = work / "new.parquet"
    settings = _writer_settings(plan.file.kind, schema, primary_key, date_field)
    parquet = pq.ParquetFile(local)
    writer: pq.ParquetWriter | None = None
    try:
        # A row group at a time: memory stays bounded by one group, as when the engine wrote it.
        for rows in _row_groups(parquet):
            shaped = _shaped(rows, schema, key) if rows is not None else schema.empty_table()
            if writer is None:  # options chosen from the first rows, as the engine does
                options = parquet_options(schema, shaped, settings["codec"], settings["indexed"])
                writer = pq.ParquetWriter(out, schema, **options)
            writer.write_table(shaped, settings["group_rows"])
    finally:
        if writer is not None:
            writer.close()
        parquet.close()
    store.upload_file(out, key, PARQUET)


def migrate_table(
    store: S3Store,
    table: str,
    target: pa.Schema,
    snap: str,
    *,
    primary_key: Sequence[str],
    date_field: str | None,
    skip: Sequence[str] = (),
    work_dir: Path | None = None,
) -> list[str]:
    """Bring every file of ``table`` of snapshots up to ``snap`` to the data schema ``target``.

    Returns the keys rewritten by this migration (those an interrupted attempt of it rewrote too,
    known by their mark), in order. ``skip``: keys just written with the schema (not read).
    """
    target = data_schema(target)
    plans: list[_Plan] = []
    done: list[str] = []
    for file in table_files(store, table, upto=snap):
        if file.key in skip:
            continue
        current = footer_schema(store, file.key)
        if current is None:
            continue
        if same_columns(current, target, file.kind):
            if (current.metadata or {}).get(MIGRATED_METADATA) == snap.encode():
                done.append(file.key)  # rewritten by an interrupted attempt of this migration
            continue
        stray = [n for n in data_schema(current, file.kind).names if n not in target.names]
        if stray:
            raise MigrationError(f"{file.key}: column(s) {', '.join(stray)} are not in the table's schema")
        plans.append(_Plan(file, current))
    work = Path(tempfile.mkdtemp(prefix=f"{table}-migrate-", dir=work_dir))
    try:
        for plan in plans:
            _rewrite(
                store, plan, _file_target(plan.schema, target, snap, plan.file.kind), primary_key, date_field, work
            )
            done.append(plan.file.key)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return sorted(done)


def mismatched_files(store: S3Store, table: str, target: pa.Schema) -> list[tuple[str, str]]:
    """The files of ``table`` whose data columns are not ``target``'s, each with what differs."""
    target = data_schema(target)
    found = []
    for file in table_files(store, table):
        current = footer_schema(store, file.key)
        if current is None or same_columns(current, target, file.kind):
            continue
        data = data_schema(current, file.kind)
        differs = [
            f"{f.name} is {data.field(f.name).type}, the table's is {f.type}"
            for f in target
            if f.name in data.names and data.field(f.name).type != f.type
        ]
        differs += [f"{f.name} missing" for f in target if f.name not in data.names]
        differs += [f"{n} not in the table" for n in data.names if n not in target.names]
        found.append((file.key, "; ".join(differs) or "column order differs"))
    return found
