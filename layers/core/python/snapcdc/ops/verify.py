"""``snapcdc verify``: replay ``full-load/`` plus every CDC file of a table in snapshot order and
check that the result equals the table's newest accepted snapshot, row for row.

It also checks that every Parquet file of the table has the newest snapshot's schema (one physical
schema per table, which Athena needs; :mod:`snapcdc.cdc.migrate`), and for gaps: a raw snapshot with no
run record, an accepted snapshot with no CDC file, or a file under ``cdc/``, ``full-load/`` or
``snapshots/`` that no run record accounts for. An output is N files (docs/design.md, "An output is N
files"): each is read as its run record lists them, every listed file's rows checked against the record.
What was processed comes from the run records (:mod:`snapcdc.lake.records`). Applying change sets back
is pure pyarrow (:func:`apply_changes`, :func:`table_differences`); the tests use it as their
oracle too: applying a change set to the old snapshot (upsert ``I`` and ``U`` by key, remove ``D``)
must give the new one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from snapcdc.cdc import feeds
from snapcdc.cdc.migrate import MigrationError, footer_schema, mismatched_files, table_files
from snapcdc.config import TableConfig
from snapcdc.errors import SnapcdcError
from snapcdc.lake.layout import CDC_PREFIX, RAW_PREFIX, RUNS_PREFIX, SNAPSHOTS_PREFIX, snapshot_time
from snapcdc.lake.ledger import processed_snapshots, read_run_record
from snapcdc.lake.output_files import OutputFilesError, read_output
from snapcdc.lake.records import RunRecord
from snapcdc.lake.store import S3Store

if TYPE_CHECKING:
    from snapcdc.cdc.iceberg.sync import IcebergLake


@dataclass(frozen=True)
class VerifyResult:
    table: str
    ok: bool
    message: str
    rows: int = 0
    snapshots: int = 0
    cdc_files: int = 0

    def line(self) -> str:
        verdict = "OK  " if self.ok else "FAIL"
        return (
            f"{verdict} {self.table}: {self.message} "
            f"(snapshots={self.snapshots}, cdc_files={self.cdc_files}, rows={self.rows})"
        )


class BrokenObjectError(SnapcdcError):
    """An object the run records account for is missing or cannot be read."""

    def __init__(self, bucket: str, key: str, what: str) -> None:
        self.key = key
        super().__init__(f"s3://{bucket}/{key} {what}")


def _read_output(store: S3Store, record: RunRecord, name: str) -> pa.Table:
    """The output ``name`` of ``record``: its N files as one table, each file's rows as the record lists."""
    return read_output(store, record.keys(name), record)


def _read_parquet(store: S3Store, key: str) -> pa.Table:
    body = store.get_bytes(key)
    if body is None:
        raise BrokenObjectError(store.bucket, key, "is missing")
    try:
        return pq.read_table(pa.BufferReader(body))
    except pa.ArrowException as error:
        raise BrokenObjectError(store.bucket, key, f"cannot be read ({error})") from None


def repair_command(table: str, snapshot: str | None) -> str:
    """The command that rewrites a table's files from ``snapshot`` on (every file, without one)."""
    return f"snapcdc replay --table {table}" + (f" --from {snapshot}" if snapshot else "")


def _written_by(store: S3Store, table: str, keys: Sequence[str]) -> str | None:
    """The earliest snapshot whose run record lists one of ``keys`` (None: not listed)."""
    wanted = set(keys)
    for snap in processed_snapshots(store, table):
        record = read_run_record(store, table, snap)
        if record is not None and wanted & set(record.all_keys()):
            return snap
    return None


def verify_table(store: S3Store, table: TableConfig, iceberg: IcebergLake | None = None) -> VerifyResult:
    processed = processed_snapshots(store, table.name)
    unprocessed = sorted(set(store.raw_snapshots(table.name)) - set(processed))
    records = [r for r in (read_run_record(store, table.name, s) for s in processed) if r is not None and r.accepted]

    def fail(message: str, **counts: int) -> VerifyResult:
        return VerifyResult(table.name, False, message, snapshots=len(records), **counts)

    if unprocessed:
        return fail(f"raw snapshots never processed: {', '.join(unprocessed)}")
    if not records:
        return VerifyResult(table.name, True, "no accepted snapshot yet")
    first, *later = records
    if not first.keys("full_load"):
        return fail(f"first accepted snapshot {first.snapshot} has no full load")
    layout = store.layout
    for what, prefix, listed in (
        ("full-load", layout.full_load_prefix(table.name), [first.keys("full_load")]),
        ("cdc", layout.cdc_prefix(table.name), [r.keys("cdc") for r in later]),
        ("snapshot", layout.snapshot_prefix(table.name), [r.keys("snapshot") for r in records]),
    ):
        problem = _files_match(store, table.name, prefix, listed)
        if problem is not None:
            return fail(f"{what} {problem}")
    newest = records[-1]
    target = footer_schema(store, newest.keys("snapshot")[0])
    if target is None:
        return fail(f"snapshot file of {newest.snapshot} is missing: {newest.keys('snapshot')[0]}")
    _check_readable(store, table.name)
    _check_listed_rows(store, records)
    mismatched = mismatched_files(store, table.name, target)
    if mismatched:
        shown = "; ".join(f"{key}: {what}" for key, what in mismatched[:3])
        return fail(
            f"{len(mismatched)} file(s) do not have the table's schema (that of snapshot {newest.snapshot}), "
            f"so Athena cannot read the table: {shown}{' ...' if len(mismatched) > 3 else ''}; "
            f"`snapcdc replay --table {table.name} --from {newest.snapshot}` rewrites them",
            cdc_files=len(later),
        )
    state = _read_output(store, first, "full_load")
    for record in later:
        state = apply_changes(state, _read_output(store, record, "cdc"), table.primary_key)
    expected = data_columns(_read_output(store, newest, "snapshot"))
    difference = table_differences(state, expected, table.primary_key)
    counts = {"rows": expected.num_rows, "cdc_files": len(later)}
    if difference is not None:
        return fail(f"replay of the change stream differs from snapshot {newest.snapshot}: {difference}", **counts)
    message = f"change stream reproduces snapshot {newest.snapshot}"
    for name, check in (("changelog", _verify_changelog), ("scd2", _verify_scd2), ("dms", _verify_dms)):
        if name in table.outputs.enabled:
            problem = check(store, table, records, expected)
            if problem is not None:
                return fail(f"{name}: {problem}", **counts)
            message += f"; {name} OK"
    if iceberg is not None and table.iceberg:  # docs/iceberg.md, "Verify"
        from snapcdc.cdc.iceberg.check import check_iceberg

        problem = check_iceberg(iceberg, records, expected)
        if problem is not None:
            return fail(f"iceberg: {problem}", **counts)
        message += "; iceberg OK"
    return VerifyResult(table.name, True, message, snapshots=len(records), **counts)


class NothingToVerifyError(SnapcdcError):
    """The bucket and prefix hold nothing of the tables asked about: a wrong --bucket or --prefix."""


def check_place(store: S3Store, tables: Sequence[TableConfig]) -> None:
    """Raise :class:`NothingToVerifyError` when no table has a raw snapshot or a run record there,
    saying where it looked and what it found instead (the folders at that level)."""
    layout = store.layout
    for table in tables:
        if store.raw_snapshots(table.name):
            return
        if next(iter(store.list_keys(layout.runs_prefix(table.name))), None) is not None:
            return
    where = f"s3://{store.bucket}/{layout.key('')}"
    found = store.list_folders(layout.key(""))
    names = [f.rstrip("/").rsplit("/", 1)[-1] + "/" for f in found]
    seen = f"found {', '.join(names[:8])}{' ...' if len(names) > 8 else ''}" if names else "it is empty"
    hint = ""
    lake = {RAW_PREFIX, RUNS_PREFIX, CDC_PREFIX, SNAPSHOTS_PREFIX}
    if names and not lake & set(names):
        hint = f"; is --prefix {names[0].rstrip('/')} meant?"
    elif names:
        hint = f"; the tables there are not {', '.join(t.name for t in tables)}: check --config"
    raise NothingToVerifyError(
        f"nothing to verify at {where}: no raw/ snapshot and no run record of {', '.join(t.name for t in tables)}; "
        f"{seen}{hint}"
    )


def _check_listed_rows(store: S3Store, records: Sequence[RunRecord]) -> None:
    """Every file a run record lists holds the rows it lists (from its footer); else the first that
    does not, named."""
    for record in records:
        for files in record.files.values():
            for file in files:
                metadata = store.parquet_metadata(file.key)
                if metadata is None:
                    raise OutputFilesError(store.bucket, file.key, "is missing")
                if metadata.num_rows != file.rows:
                    raise OutputFilesError(
                        store.bucket, file.key, f"has {metadata.num_rows} rows, its run record lists {file.rows}"
                    )


def _check_readable(store: S3Store, table: str) -> None:
    """Every Parquet file of the table has a readable footer; else the first that does not, named."""
    for file in table_files(store, table):
        try:
            footer_schema(store, file.key)
        except MigrationError:
            raise BrokenObjectError(store.bucket, file.key, "is not a readable Parquet file") from None


def verify(store: S3Store, tables: list[TableConfig], iceberg: IcebergLake | None = None) -> list[VerifyResult]:
    return [_verified(store, table, iceberg) for table in tables]


def _verified(store: S3Store, table: TableConfig, iceberg: IcebergLake | None = None) -> VerifyResult:
    """:func:`verify_table`, a table whose files cannot be read or combined reported as failing (a
    broken object named with the command that rebuilds it)."""
    try:
        return verify_table(store, table, iceberg)
    except (BrokenObjectError, OutputFilesError) as error:
        snapshot = _written_by(store, table.name, [error.key])
        return VerifyResult(table.name, False, f"{error}; `{repair_command(table.name, snapshot)}` rebuilds it")
    except (SnapcdcError, FileNotFoundError, pa.ArrowException) as error:
        return VerifyResult(table.name, False, f"cannot be verified: {error}")


# -- the change feeds (docs/design.md, "Change feeds") --------------------------------------------
def _files_match(store: S3Store, table: str, prefix: str, listed: Sequence[Sequence[str]]) -> str | None:
    """None when the files under ``prefix`` are exactly those the run records list (``listed``: each
    record's files of the output; none: the record lacks it); else what is missing and what is not
    listed (a stray part file too), with the command that rebuilds the missing."""
    actual = set(store.list_keys(prefix))
    wanted = {key for keys in listed for key in keys}
    if all(listed) and wanted == actual:
        return None
    missing = sorted(wanted - actual)
    repair = f"; `{repair_command(table, _written_by(store, table, missing))}` rebuilds them" if missing else ""
    unlisted = "" if all(listed) else f"; {sum(1 for keys in listed if not keys)} run record(s) list none"
    return f"files do not match run records: missing {missing}, unexpected {sorted(actual - wanted)}{unlisted}{repair}"


def _without_keys(state: pa.Table, rows: pa.Table, keys: list[str]) -> pa.Table:
    return state.join(rows.select(keys), keys=keys, join_type="left anti") if rows.num_rows else state


def _verify_changelog(store: S3Store, table: TableConfig, records: list[RunRecord], expected: pa.Table) -> str | None:
    """One file per accepted snapshot, commit versions 1..n, each pre-image equal to the row it
    replaces; applying every file in order gives the newest snapshot."""
    layout, keys = store.layout, list(table.primary_key)
    problem = _files_match(
        store, table.name, layout.changelog_prefix(table.name), [r.keys("changelog") for r in records]
    )
    if problem:
        return problem
    state = expected.schema.empty_table()
    for number, record in enumerate(records, start=1):
        rows = _read_output(store, record, "changelog")
        versions = set(rows[feeds.COMMIT_VERSION].to_pylist())
        if record.commit_version != number or versions - {number}:
            found = f"{sorted(versions)} (run record: {record.commit_version})"
            return f"{record.snapshot}: commit version {found}, expected {number}"
        stamps = set(rows[feeds.COMMIT_TIMESTAMP].to_pylist())
        if stamps - {snapshot_time(record.snapshot)}:
            return f"{record.snapshot}: _commit_timestamp {sorted(stamps)} is not the snapshot's time"
        kind = rows[feeds.CHANGE_TYPE]

        def of(*kinds: str, rows: pa.Table = rows, kind: pa.ChunkedArray = kind) -> pa.Table:
            return conform(data_columns(rows.filter(pc.is_in(kind, pa.array(list(kinds))))), expected.schema)

        pre = of(feeds.PREIMAGE)
        replaced = state.join(pre.select(keys), keys=keys, join_type="inner") if pre.num_rows else pre
        difference = table_differences(conform(replaced, expected.schema), pre, keys)
        if difference is not None:
            return f"{record.snapshot}: pre-images are not the rows they replace: {difference}"
        if of(feeds.POSTIMAGE).num_rows != pre.num_rows:
            return f"{record.snapshot}: {pre.num_rows} pre-images but {of(feeds.POSTIMAGE).num_rows} post-images"
        state = _without_keys(state, of(feeds.DELETE, feeds.PREIMAGE), keys)
        state = pa.concat_tables([conform(state, expected.schema), of(feeds.INSERT, feeds.POSTIMAGE)])
    return table_differences(state, expected, keys)


_DMS_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{6}$")


def _verify_dms(store: S3Store, table: TableConfig, records: list[RunRecord], expected: pa.Table) -> str | None:
    """``LOAD00000001.parquet`` then one change file per later snapshot; ``Op`` first, the timestamp
    column as DMS writes it; applied in name order they give the newest snapshot."""
    layout, keys = store.layout, list(table.primary_key)
    problem = _files_match(store, table.name, layout.dms_prefix(table.name), [r.keys("dms") for r in records])
    if problem:
        return problem
    state = expected.schema.empty_table()
    for record in records:
        rows = _read_output(store, record, "dms")
        if rows.column_names[:2] != [feeds.DMS_OP, feeds.DMS_TIMESTAMP]:
            return f"{record.keys('dms')[0]}: first columns {rows.column_names[:2]}, expected Op, {feeds.DMS_TIMESTAMP}"
        stamps = set(rows[feeds.DMS_TIMESTAMP].to_pylist())
        if stamps - {feeds.dms_timestamp(snapshot_time(record.snapshot))} or not all(
            _DMS_TIMESTAMP.match(s) for s in stamps
        ):
            return f"{record.keys('dms')[0]}: {feeds.DMS_TIMESTAMP} {sorted(stamps)[:3]} is not the snapshot's time"
        changes = rows.drop_columns([feeds.DMS_TIMESTAMP]).rename_columns(
            ["_cdc_operation" if n == feeds.DMS_OP else n for n in rows.column_names if n != feeds.DMS_TIMESTAMP]
        )
        state = apply_changes(state, changes, keys)
    return table_differences(state, expected, keys)


def scd2_history(store: S3Store, table: str) -> pa.Table:
    """Every version in ``scd2/<table>/`` (current and closed files)."""
    parts = [_read_parquet(store, key) for key in store.list_keys(store.layout.scd2_prefix(table))]
    if not parts:
        raise FileNotFoundError(f"s3://{store.bucket}/{store.layout.scd2_prefix(table)} is empty")
    return pa.concat_tables([p.replace_schema_metadata(None) for p in parts], promote_options="permissive")


def _verify_scd2(store: S3Store, table: TableConfig, records: list[RunRecord], expected: pa.Table) -> str | None:
    """The current versions equal the newest snapshot; the versions valid at each accepted snapshot's
    time equal that snapshot (on the key and the tracked columns, when only some are tracked)."""
    keys = list(table.primary_key)
    history = scd2_history(store, table.name)
    current = history.filter(pc.is_null(history[feeds.VALID_TO]))
    if (
        not pc.all(current[feeds.IS_CURRENT]).as_py()
        or pc.any(history.filter(pc.is_valid(history[feeds.VALID_TO]))[feeds.IS_CURRENT]).as_py()
    ):
        return "is_current is not (valid_to is null)"
    closed = history.filter(pc.is_valid(history[feeds.VALID_TO]))
    if closed.num_rows and not pc.all(pc.less(closed[feeds.VALID_FROM], closed[feeds.VALID_TO])).as_py():
        return "a version closes before it opens"
    difference = table_differences(conform(data_columns(current), expected.schema), expected, keys)
    if difference is not None:
        return f"current versions differ from the newest snapshot: {difference}"
    scd2 = table.outputs.scd2
    tracked = list(scd2.track_history_columns) if scd2 is not None and scd2.track_history_columns else None
    for record in records:
        snapshot = conform(data_columns(_read_output(store, record, "snapshot")), expected.schema)
        valid = conform(data_columns(feeds.as_of(history, snapshot_time(record.snapshot))), expected.schema)
        if tracked is not None:
            snapshot, valid = snapshot.select([*keys, *tracked]), valid.select([*keys, *tracked])
        difference = table_differences(valid, snapshot, keys)
        if difference is not None:
            return f"the versions valid at {record.snapshot} differ from that snapshot: {difference}"
    return None


# -- applying change sets back (pure) -------------------------------------------------------------
def data_columns(table: pa.Table) -> pa.Table:
    """Drop the pipeline's own columns (CDC metadata, hashes): everything starting with ``_``."""
    return table.select([name for name in table.column_names if not name.startswith("_")])


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """``table`` with ``schema``'s columns in its order; missing columns become nulls."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table[field.name].cast(field.type))
        else:
            columns.append(pa.nulls(table.num_rows, field.type))
    return pa.Table.from_arrays(columns, schema=schema)


def apply_changes(state: pa.Table, changes: pa.Table, primary_key: Sequence[str]) -> pa.Table:
    """Upsert the ``I``/``U`` rows of ``changes`` into ``state`` and remove its ``D`` keys."""
    changes_data = data_columns(changes)
    schema = pa.unify_schemas([data_columns(state).schema, changes_data.schema], promote_options="permissive")
    state = conform(data_columns(state), schema)
    if changes.num_rows == 0:
        return state
    keys = list(primary_key)
    kept = state.join(changes_data.select(keys), keys=keys, join_type="left anti")
    upserts = changes_data.filter(pc.is_in(changes["_cdc_operation"], pa.array(["I", "U"])))
    return pa.concat_tables([conform(kept, schema), conform(upserts, schema)])


def sort_by_key(table: pa.Table, primary_key: Sequence[str]) -> pa.Table:
    return table.sort_by([(name, "ascending") for name in primary_key])


def table_differences(actual: pa.Table, expected: pa.Table, primary_key: Sequence[str]) -> str | None:
    """None when both hold the same rows (in any order); else a short description of the first difference."""
    if actual.column_names != expected.column_names:
        return f"columns differ: {actual.column_names} != {expected.column_names}"
    if actual.num_rows != expected.num_rows:
        return f"row count {actual.num_rows} != expected {expected.num_rows}"
    actual = sort_by_key(conform(actual, expected.schema), primary_key)
    expected = sort_by_key(expected, primary_key)
    if actual.equals(expected):
        return None
    for name in expected.column_names:
        mismatch = pc.invert(pc.fill_null(pc.equal(actual[name], expected[name]), False))
        both_null = pc.and_(pc.is_null(actual[name]), pc.is_null(expected[name]))
        rows = pc.indices_nonzero(pc.and_not(mismatch, both_null))
        if len(rows):
            row = rows[0].as_py()
            key = {k: expected[k][row].as_py() for k in primary_key}
            return (
                f"column {name} differs at key {key}: {actual[name][row].as_py()!r} != {expected[name][row].as_py()!r}"
            )
    return "tables differ"
