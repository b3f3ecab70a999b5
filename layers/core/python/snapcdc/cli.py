"""The ``snapcdc`` console script. Each subcommand is a small ``_add_<name>`` / ``_run_<name>`` pair."""

from __future__ import annotations

import argparse
import contextlib
import functools
import io
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snapcdc.errors import SnapcdcError

if TYPE_CHECKING:
    from snapcdc.cdc.catalog import GlueCatalog
    from snapcdc.config import TableConfig
    from snapcdc.lake.records import RunRecord
    from snapcdc.lake.snapshot import Snapshot
    from snapcdc.lake.store import S3Store

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_REFUSED = 3


# -- diff ---------------------------------------------------------------------------------------
def _observed_at(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO-8601 time: {text!r}") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


def _add_diff(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "diff",
        help="diff two local snapshots (CSV or Parquet) with the Lambda's engine",
        description="Writes the change set to OUT and, when rows were rejected, OUT's stem + "
        "'.quarantine.parquet' beside it. Prints one JSON line of counts. Exit 2: malformed input; "
        "exit 3: refused by the delete guard (nothing written).",
    )
    parser.add_argument("--old", type=Path, help="previous snapshot; omit for a first (full) load")
    parser.add_argument("--new", type=Path, required=True, help="new snapshot")
    parser.add_argument("--pk", required=True, help="primary key column(s), comma separated")
    parser.add_argument("--date-field", help="column whose advance is checked on updates")
    parser.add_argument("--delimiter", help="CSV delimiter (default: detect ',' or ';')")
    parser.add_argument("--max-delete-ratio", type=_ratio, default=0.5, help="refuse above this share (0.5)")
    parser.add_argument("--allow-mass-delete", action="store_true", help="accept any share of deletes")
    parser.add_argument("--observed-at", type=_observed_at, help="_cdc_timestamp (ISO-8601; default: now)")
    parser.add_argument("--snapshot-out", type=Path, help="also keep the accepted snapshot Parquet here")
    parser.add_argument("--out", type=Path, required=True, help="change set Parquet to write")
    parser.add_argument(
        "--engine",
        choices=("lambda", "spark"),
        default="lambda",
        help="lambda: the engine in this process (default); spark: the Glue job's code on local Spark (Java 17)",
    )
    parser.set_defaults(run=_run_diff)


def _diff_engine(name: str) -> Any:
    """``diff_files`` of the chosen engine (spark: the Glue job's code on a local Spark session)."""
    from snapcdc.engine import diff_files

    if name != "spark":
        return diff_files
    from snapcdc.spark.engine import spark_diff_files
    from snapcdc.spark.session import local_session

    spark = local_session()
    spark.sparkContext.setLogLevel("ERROR")
    return functools.partial(spark_diff_files, spark)


def _run_diff(args: argparse.Namespace) -> int:
    from snapcdc.engine import DeleteGuardError, InputError, TableSpec

    keys = tuple(k.strip() for k in args.pk.split(",") if k.strip())
    if not keys:
        print("snapcdc diff: --pk names no column", file=sys.stderr)
        return EXIT_BAD_INPUT
    spec = TableSpec(
        primary_key=keys,
        date_field=args.date_field,
        delimiter=args.delimiter,
        max_delete_ratio=args.max_delete_ratio,
        allow_mass_delete=args.allow_mass_delete,
    )
    for path in (args.old, args.new):
        if path is not None and not path.is_file():
            print(f"snapcdc diff: {path}: no such file", file=sys.stderr)
            return EXIT_BAD_INPUT
    out: Path = args.out
    quarantine_out = out.with_name(out.stem + ".quarantine.parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".snapcdc-") as work:
        try:
            outcome = _diff_engine(args.engine)(
                old=args.old,
                new=args.new,
                spec=spec,
                observed_at=args.observed_at or datetime.now(UTC),
                out_dir=Path(work),
            )
        except InputError as error:
            print(f"snapcdc diff: {error}", file=sys.stderr)
            return EXIT_BAD_INPUT
        except DeleteGuardError as error:
            print(f"snapcdc diff: {error}", file=sys.stderr)
            return EXIT_REFUSED
        shutil.move(outcome.changes_path, out)
        quarantine_out.unlink(missing_ok=True)
        if outcome.quarantine_path is not None:
            shutil.move(outcome.quarantine_path, quarantine_out)
        if args.snapshot_out is not None:
            args.snapshot_out.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(outcome.snapshot_path, args.snapshot_out)
    summary: dict[str, object] = {**outcome.stats.as_dict(), "seconds": round(outcome.seconds, 3)}
    summary["out"] = str(out)
    summary["quarantine"] = str(quarantine_out) if outcome.quarantine_path is not None else None
    summary["schema_changes"] = outcome.schema_changes
    print(json.dumps(summary))
    return EXIT_OK


# -- bucket commands: verify, replay, run ---------------------------------------------------------
def _add_bucket_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bucket", required=True, help="the data bucket")
    parser.add_argument("--prefix", default="", help="DATA_PREFIX the stack was deployed with")
    parser.add_argument("--config", type=Path, help="pipeline config (default: the packaged one)")
    parser.add_argument("--endpoint-url", help="S3 endpoint (e.g. an embedded moto server)")


def _add_catalog_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--glue-database",
        help="also create/update each processed table's Glue tables in this database (as the CDC function does)",
    )


def _catalog(args: argparse.Namespace, store: S3Store) -> GlueCatalog | None:
    if not args.glue_database:
        return None
    import boto3

    from snapcdc.cdc.catalog import GlueCatalog

    glue = boto3.client("glue", endpoint_url=args.endpoint_url)  # one endpoint for S3 and Glue (moto server)
    return GlueCatalog(glue, args.glue_database, store.bucket, store.layout)


def _bucket_store(args: argparse.Namespace) -> tuple[S3Store, list[TableConfig]]:
    import boto3

    from snapcdc.config import load_config
    from snapcdc.lake.layout import Layout
    from snapcdc.lake.store import S3Store

    config = load_config(args.config)
    try:
        tables = [config.table(args.table)] if getattr(args, "table", None) else list(config.tables)
    except KeyError as error:
        raise CliError(str(error.args[0])) from None
    store = S3Store(boto3.client("s3", endpoint_url=args.endpoint_url), args.bucket, Layout(args.prefix))
    return store, tables


def _add_verify(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "verify",
        help="check that full-load + cdc files, replayed in order, equal the newest snapshot",
        description="One line per table; exit 1 on any difference or gap.",
    )
    _add_bucket_options(parser)
    parser.add_argument("--table", help="only this table")
    parser.set_defaults(run=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    from snapcdc.ops.verify import verify

    store, tables = _bucket_store(args)
    results = verify(store, tables)
    for result in results:
        print(result.line())
    return EXIT_OK if all(r.ok for r in results) else 1


def _add_replay(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "replay",
        help="recompute cdc/, snapshots/ and run records of a table from raw/ (idempotent)",
        description="After a bug fix or a config change (e.g. allow_mass_delete). Later snapshots whose "
        "base changes are recomputed too.",
    )
    _add_bucket_options(parser)
    parser.add_argument("--table", required=True)
    parser.add_argument("--from", dest="from_snap", type=_snapshot_arg, help="first snapshot id (YYYYMMDDTHHMMSSZ)")
    parser.add_argument("--to", dest="to_snap", type=_snapshot_arg, help="last snapshot id")
    _add_catalog_option(parser)
    parser.set_defaults(run=_run_replay)


def _run_replay(args: argparse.Namespace) -> int:
    from snapcdc.cdc.stage import TableProcessor
    from snapcdc.ops.replay import replay

    store, [table] = _bucket_store(args)
    records = replay(TableProcessor(store, table, catalog=_catalog(args, store)), args.from_snap, args.to_snap)
    for record in records:
        print(json.dumps({"table": record.table, "snapshot": record.snapshot, "status": record.status, **record.stats}))
    return EXIT_OK


def _add_run(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "run",
        help="one extract + CDC cycle against real Kaggle and a real bucket (the Lambdas' code path)",
        description="Kaggle credentials from KAGGLE_USERNAME and KAGGLE_KEY.",
    )
    _add_bucket_options(parser)
    parser.add_argument("--at", type=_observed_at, help="snapshot time (default: now)")
    _add_catalog_option(parser)
    parser.set_defaults(run=_run_run)


def _run_run(args: argparse.Namespace) -> int:
    import os

    from snapcdc.cdc.batch import process_raw_keys
    from snapcdc.config import load_config
    from snapcdc.extract.kaggle import KaggleCredentials, KaggleSource
    from snapcdc.extract.stage import run_extract
    from snapcdc.lake.layout import snapshot_id

    store, _ = _bucket_store(args)
    config = load_config(args.config)
    snap = snapshot_id(args.at or datetime.now(UTC))
    with tempfile.TemporaryDirectory(prefix="snapcdc-run-") as work:
        credentials = KaggleCredentials(os.environ.get("KAGGLE_USERNAME", ""), os.environ.get("KAGGLE_KEY", ""))
        source = KaggleSource(credentials, Path(work))
        report = run_extract(store=store, config=config, source=source, snap=snap)
        print(json.dumps(report.to_dict(), default=str))
        keys = [t.key for t in report.tables if t.key]
        batch = process_raw_keys(store, config, keys, Path(work), catalog=_catalog(args, store))
    print(json.dumps(batch.summary(), default=str))
    return EXIT_OK if not (batch.failures or batch.permanent_failures) else 1


# -- ingest ----------------------------------------------------------------------------------------
def _snapshot_arg(text: str) -> Snapshot:
    from snapcdc.lake.snapshot import Snapshot, SnapshotIdError

    try:
        return Snapshot.parse(text)
    except SnapshotIdError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _add_ingest(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser(
        "ingest",
        help="put a local file as a table's snapshot and process it as the CDC function would",
        description="Puts FILE where the extract puts that table's snapshot (raw/<table>/snapshot=SNAP/<file>) "
        "and processes it as the CDC function does: earlier unprocessed snapshots of the table first, the "
        "run record last. For backfilling historical exports. The last stdout line is one JSON object with "
        "the run record's status and counts. Exit 0: accepted; 3: refused by the delete guard; 2: bad input "
        "(a malformed file: the message names the file and line).",
    )
    _add_bucket_options(parser)
    _add_catalog_option(parser)
    parser.add_argument("--table", required=True, help="the table (as named in the pipeline config)")
    parser.add_argument("--snapshot", required=True, type=_snapshot_arg, help="snapshot id, YYYYMMDDTHHMMSSZ")
    parser.add_argument("file", type=Path, metavar="FILE", help="the table's CSV as exported")
    parser.set_defaults(run=_run_ingest)


def _run_ingest(args: argparse.Namespace) -> int:
    from snapcdc.cdc.stage import TableProcessor
    from snapcdc.lake.records import RefusalReason
    from snapcdc.ops.ingest import IngestRefused, ingest

    source: Path = args.file
    if not source.is_file():
        print(f"snapcdc ingest: {source}: no such file", file=sys.stderr)
        return EXIT_BAD_INPUT
    store, [table] = _bucket_store(args)
    try:
        done = ingest(TableProcessor(store, table, catalog=_catalog(args, store)), args.snapshot, source)
    except IngestRefused as refused:
        print(f"snapcdc ingest: {source}: {refused}", file=sys.stderr)
        return EXIT_BAD_INPUT
    for caught_up in done.records[:-1]:
        print(json.dumps(_record_line(caught_up)))
    record = done.record
    if record.refused_reason == RefusalReason.MALFORMED_INPUT:
        where = f"s3://{store.bucket}/{done.key}"
        print(f"snapcdc ingest: {str(record.error).replace(where, str(source))}", file=sys.stderr)
    print(json.dumps({**_record_line(record), "already_processed": done.already_processed}))
    if record.accepted:
        return EXIT_OK
    return EXIT_REFUSED if record.refused_reason == RefusalReason.DELETE_GUARD else EXIT_BAD_INPUT


def _record_line(record: RunRecord) -> dict[str, object]:
    line: dict[str, object] = {"table": record.table, "snapshot": record.snapshot, "status": record.status}
    line.update(record.stats)
    if not record.accepted:
        line.update(refused_reason=record.refused_reason, error=record.error)
    if record.migration is not None:
        line["migrated"] = len(record.migration.rewritten)
    return line


# -- demo ----------------------------------------------------------------------------------------
def _add_demo(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = commands.add_parser("demo", help="the whole pipeline on this machine (embedded S3, fake Kaggle)")
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="where the bucket is copied")
    parser.add_argument("--snapshots", type=int, default=4, help="scheduled runs to simulate (at least 3)")
    parser.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    try:
        from snapcdc_dev.demo import run_demo
    except ModuleNotFoundError as missing:
        raise CliError(
            "the demo needs the development harness (package snapcdc-dev, devkit/ in the repository):"
            " run `make demo`, or `pip install -e ./devkit` in this environment"
        ) from missing
    return run_demo(args.out, snapshots=max(3, args.snapshots))


# -- entry point ---------------------------------------------------------------------------------
_COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_diff,
    _add_verify,
    _add_replay,
    _add_run,
    _add_ingest,
    _add_demo,
]  # type: ignore[type-arg]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="snapcdc", description="Snapshot change-data-capture tools")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in _COMMANDS:
        add(commands)
    return parser


class _Stderr(io.TextIOBase):
    """The process's standard error at the time of each write (a test's capture may stand in for it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


@contextlib.contextmanager
def _logs_to_stderr() -> Iterator[None]:
    """While a command runs, the pipeline's JSON log lines go to stderr: stdout is the command's result."""
    from snapcdc.observability import logger

    handler = logger.registered_handler
    if not isinstance(handler, logging.StreamHandler):
        yield
        return
    previous = handler.setStream(_Stderr())
    try:
        yield
    finally:
        handler.setStream(previous)


class CliError(SnapcdcError):
    """A wrong argument found after parsing (e.g. a table the config does not name)."""


def main(argv: Sequence[str] | None = None) -> int:
    """Runs a command. An expected failure (snapcdc's own errors, AWS errors, a missing file) is one
    line on stderr, ``snapcdc <command>: <error class>: <message>``, and exit 1; not a traceback."""
    from botocore.exceptions import BotoCoreError, ClientError

    args = build_parser().parse_args(argv)
    try:
        with _logs_to_stderr():
            code: int = args.run(args)
    except (SnapcdcError, BotoCoreError, ClientError, FileNotFoundError) as error:
        print(f"snapcdc {args.command}: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())
