"""The ``snapcdc`` console script. Each subcommand is a small ``_add_<name>`` / ``_run_<name>`` pair."""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from snapcdc import cli_inputs
from snapcdc.cli_console import Parser, common_options, pipeline_logs, version
from snapcdc.cli_failure import (
    EXIT_CHECK_FAILED,
    EXIT_ENVIRONMENT,
    EXIT_OK,
    EXIT_REFUSED,
    EXIT_USAGE,
    CliError,
    classify,
    input_fix,
    one_line,
)

if TYPE_CHECKING:
    from snapcdc.cdc.catalog import GlueCatalog
    from snapcdc.cdc.iceberg.sync import IcebergLake
    from snapcdc.config import TableConfig
    from snapcdc.lake.store import S3Store

EXIT_BAD_INPUT = EXIT_USAGE  # ingest's documented "2: bad input"


# -- diff ---------------------------------------------------------------------------------------
def _add_diff(commands: argparse._SubParsersAction[Parser]) -> None:
    parser = commands.add_parser(
        "diff",
        help="diff two local snapshots (CSV or Parquet) with the Lambda's engine",
        description="Writes the change set to OUT and, when rows were rejected, OUT's stem + "
        "'.quarantine.parquet' beside it. Prints one JSON line of counts. Exit 2: a wrong argument or "
        "malformed input; exit 3: refused by the delete guard (nothing written); 5: no Java for --engine spark.",
        parents=[common_options()],
    )
    parser.add_argument("--old", type=Path, help="previous snapshot; omit for a first (full) load")
    parser.add_argument("--new", type=Path, required=True, help="new snapshot")
    parser.add_argument("--pk", required=True, help="primary key column(s), comma separated")
    parser.add_argument("--date-field", help="column whose advance is checked on updates")
    parser.add_argument(
        "--delimiter", type=cli_inputs.delimiter, help="CSV delimiter: one character, or '\\t' (default: ',' or ';')"
    )
    _add_encoding_option(parser)
    parser.add_argument("--max-delete-ratio", type=cli_inputs.ratio, default=0.5, help="refuse above this share (0.5)")
    parser.add_argument("--allow-mass-delete", action="store_true", help="accept any share of deletes")
    parser.add_argument("--observed-at", type=cli_inputs.observed_at, help="_cdc_timestamp (ISO-8601; default: now)")
    parser.add_argument("--snapshot-out", type=Path, help="also keep the accepted snapshot Parquet here")
    parser.add_argument("--out", type=Path, required=True, help="change set Parquet to write")
    parser.add_argument(
        "--engine",
        choices=("lambda", "spark"),
        default="lambda",
        help="lambda: the engine in this process (default); spark: the Glue job's code on local Spark (Java 17)",
    )
    parser.set_defaults(run=_run_diff)


def _add_encoding_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--encoding",
        type=cli_inputs.encoding,
        default="utf-8",
        help="the CSV's text encoding (default utf-8; e.g. latin-1, cp1252): read as UTF-8 from a converted copy",
    )


def _diff_engine(name: str, keep_snapshot: bool) -> Any:
    """``diff_files`` of the chosen engine (spark: the Glue job's code on a local Spark session). The
    Lambda engine writes no snapshot unless ``keep_snapshot`` (``--snapshot-out``): the change set is
    the same, and a big table's snapshot is most of the work. The Spark engine always writes its own."""
    from snapcdc.engine import diff_files

    if name != "spark":
        return functools.partial(diff_files, keep_snapshot=keep_snapshot)
    from snapcdc.spark.engine import spark_diff_files
    from snapcdc.spark.session import JavaMissingError, local_session

    try:
        spark = local_session()
    except JavaMissingError:
        raise
    except Exception as error:  # pyspark's own errors when Java is there but does not start
        raise CliError(
            f"local Spark did not start ({type(error).__name__}: {error})",
            EXIT_ENVIRONMENT,
            "check Java 17 (java -version, JAVA_HOME), or use --engine lambda",
        ) from error
    spark.sparkContext.setLogLevel("ERROR")
    return functools.partial(spark_diff_files, spark)


def _run_diff(args: argparse.Namespace) -> int:
    from snapcdc.engine import DeleteGuardError, TableSpec

    keys = tuple(k.strip() for k in args.pk.split(",") if k.strip())
    if not keys:
        raise CliError("--pk names no column", EXIT_USAGE, "give the key column(s), comma separated")
    if args.date_field is not None and args.date_field in keys:
        raise CliError(f"--date-field {args.date_field} is also a --pk column", EXIT_USAGE, "name another column")
    spec = TableSpec(
        primary_key=keys,
        date_field=args.date_field,
        delimiter=args.delimiter,
        max_delete_ratio=args.max_delete_ratio,
        allow_mass_delete=args.allow_mass_delete,
    )
    old = cli_inputs.input_file(args.old, "--old") if args.old is not None else None
    new = cli_inputs.input_file(args.new, "--new")
    out: Path = args.out
    if out.is_dir():
        raise CliError(f"--out {out}: is a folder", EXIT_USAGE, "name the Parquet file to write")
    quarantine_out = out.with_name(out.stem + ".quarantine.parquet")
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out.parent, prefix=".snapcdc-") as work:
        try:
            outcome = _diff_engine(args.engine, keep_snapshot=args.snapshot_out is not None)(
                old=cli_inputs.utf8_copy(old, args.encoding, Path(work)) if old is not None else None,
                new=cli_inputs.utf8_copy(new, args.encoding, Path(work)),
                spec=spec,
                observed_at=args.observed_at or datetime.now(UTC),
                out_dir=Path(work),
                new_name=str(new),
                old_name=str(old) if old is not None else None,
            )
        except DeleteGuardError as error:
            raise CliError(
                f"refusing the new snapshot: {error.deletes} deletes of {error.rows_old} rows "
                f"(ratio {error.ratio:.3f} > --max-delete-ratio {error.max_ratio:.3f}); nothing written",
                EXIT_REFUSED,
                "if the deletes are real, rerun with --allow-mass-delete or a higher --max-delete-ratio",
            ) from None
        shutil.move(outcome.changes_path, out)
        quarantine_out.unlink(missing_ok=True)
        if outcome.quarantine_path is not None:
            shutil.move(outcome.quarantine_path, quarantine_out)
        if args.snapshot_out is not None and outcome.snapshot_path is not None:
            args.snapshot_out.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(outcome.snapshot_path, args.snapshot_out)
    summary: dict[str, object] = {**outcome.stats.as_dict(), "seconds": round(outcome.seconds, 3)}
    summary["out"] = str(out)
    summary["quarantine"] = str(quarantine_out) if outcome.quarantine_path is not None else None
    summary["schema_changes"] = outcome.schema_changes
    summary["input_notes"] = outcome.input_notes
    print(json.dumps(summary))
    return EXIT_OK


# -- bucket commands: verify, replay, run ---------------------------------------------------------
def _add_bucket_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bucket", required=True, help="the data bucket")
    parser.add_argument("--prefix", default="", help="DATA_PREFIX the stack was deployed with")
    parser.add_argument("--config", type=Path, help="pipeline config (default: the packaged one)")
    parser.add_argument("--endpoint-url", help="S3 endpoint (e.g. the one `snapcdc demo --serve` prints)")


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


def _add_iceberg_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--iceberg-database", help="the Glue database of the Iceberg tables (docs/iceberg.md)")


def _iceberg(args: argparse.Namespace, store: S3Store) -> IcebergLake | None:
    """The Iceberg tables of the tables that enable them, when ``--iceberg-database`` names their database."""
    if not getattr(args, "iceberg_database", None):
        return None
    import boto3

    from snapcdc.cdc.iceberg.sync import iceberg_lake
    from snapcdc.config import load_config

    glue = boto3.client("glue", endpoint_url=args.endpoint_url)
    return iceberg_lake(load_config(args.config), store, glue, args.iceberg_database)


def _bucket_store(args: argparse.Namespace) -> tuple[S3Store, list[TableConfig]]:
    import boto3

    from snapcdc.config import load_config
    from snapcdc.lake.layout import Layout
    from snapcdc.lake.store import S3Store

    config = load_config(args.config)
    try:
        tables = [config.table(args.table)] if getattr(args, "table", None) else list(config.tables)
    except KeyError:
        raise CliError(
            f"--table {args.table}: not a table of the pipeline config", EXIT_USAGE, f"use one of {config.table_names}"
        ) from None
    store = S3Store(boto3.client("s3", endpoint_url=args.endpoint_url), args.bucket, Layout(args.prefix))
    return store, tables


def _add_verify(commands: argparse._SubParsersAction[Parser]) -> None:
    parser = commands.add_parser(
        "verify",
        help="check that full-load + cdc files, replayed in order, equal the newest snapshot",
        description="One line per table; exit 1 on any difference or gap, 2 when the bucket and prefix "
        "hold no table of the config (the message says what is there).",
        parents=[common_options()],
    )
    _add_bucket_options(parser)
    parser.add_argument("--table", help="only this table")
    _add_iceberg_option(parser)
    parser.set_defaults(run=_run_verify)


def _run_verify(args: argparse.Namespace) -> int:
    from snapcdc.ops.verify import check_place, verify

    store, tables = _bucket_store(args)
    check_place(store, tables)
    results = verify(store, tables, _iceberg(args, store))
    for result in results:
        print(result.line())
    return EXIT_OK if all(r.ok for r in results) else EXIT_CHECK_FAILED


def _add_replay(commands: argparse._SubParsersAction[Parser]) -> None:
    parser = commands.add_parser(
        "replay",
        help="recompute cdc/, snapshots/ and run records of a table from raw/ (idempotent)",
        description="After a bug fix or a config change (e.g. allow_mass_delete). Later snapshots whose "
        "base changes are recomputed too.",
        parents=[common_options()],
    )
    _add_bucket_options(parser)
    parser.add_argument("--table", required=True)
    parser.add_argument(
        "--from", dest="from_snap", type=cli_inputs.snapshot, help="first snapshot id (YYYYMMDDTHHMMSSZ)"
    )
    parser.add_argument("--to", dest="to_snap", type=cli_inputs.snapshot, help="last snapshot id")
    _add_catalog_option(parser)
    _add_iceberg_option(parser)
    parser.set_defaults(run=_run_replay)


def _run_replay(args: argparse.Namespace) -> int:
    from snapcdc.cdc.stage import TableProcessor
    from snapcdc.ops.replay import replay

    cli_inputs.snapshot_range(args.from_snap, args.to_snap)
    store, [table] = _bucket_store(args)
    stage = TableProcessor(store, table, catalog=_catalog(args, store), iceberg=_iceberg(args, store))
    records = replay(stage, args.from_snap, args.to_snap)
    for record in records:
        print(json.dumps({"table": record.table, "snapshot": record.snapshot, "status": record.status, **record.stats}))
    return EXIT_OK


def _add_run(commands: argparse._SubParsersAction[Parser]) -> None:
    parser = commands.add_parser(
        "run",
        help="one extract + CDC cycle against real Kaggle and a real bucket (the Lambdas' code path)",
        description="Kaggle credentials from KAGGLE_USERNAME and KAGGLE_KEY, else from the kaggle client's "
        "own kaggle.json (KAGGLE_CONFIG_DIR, ~/.kaggle or ~/.config/kaggle).",
        parents=[common_options()],
    )
    _add_bucket_options(parser)
    parser.add_argument("--at", type=cli_inputs.observed_at, help="snapshot time (default: now)")
    _add_catalog_option(parser)
    parser.set_defaults(run=_run_run)


def _run_run(args: argparse.Namespace) -> int:
    import os

    from snapcdc.cdc.batch import process_raw_keys
    from snapcdc.config import load_config
    from snapcdc.extract.kaggle import KaggleCredentials, KaggleSource
    from snapcdc.extract.stage import run_extract
    from snapcdc.lake.layout import snapshot_id

    username, key, _ = cli_inputs.kaggle_credentials(os.environ, Path.home())
    store, _ = _bucket_store(args)
    config = load_config(args.config)
    snap = snapshot_id(args.at or datetime.now(UTC))
    with tempfile.TemporaryDirectory(prefix="snapcdc-run-") as work:
        source = KaggleSource(KaggleCredentials(username, key), Path(work))
        report = run_extract(store=store, config=config, source=source, snap=snap)
        print(json.dumps(report.to_dict(), default=str))
        keys = [t.key for t in report.tables if t.key]
        batch = process_raw_keys(store, config, keys, Path(work), catalog=_catalog(args, store))
    print(json.dumps(batch.summary(), default=str))
    return EXIT_OK if not (batch.failures or batch.permanent_failures) else EXIT_CHECK_FAILED


# -- ingest ----------------------------------------------------------------------------------------
def _add_ingest(commands: argparse._SubParsersAction[Parser]) -> None:
    parser = commands.add_parser(
        "ingest",
        help="put a local file as a table's snapshot and process it as the CDC function would",
        description="Puts FILE where the extract puts that table's snapshot (raw/<table>/snapshot=SNAP/<file>) "
        "and processes it as the CDC function does: earlier unprocessed snapshots of the table first, the "
        "run record last. For backfilling historical exports. The last stdout line is one JSON object with "
        "the run record's status and counts. Exit 0: accepted; 3: refused by the delete guard; 2: bad input "
        "(a malformed file: the message names the file and line).",
        parents=[common_options()],
    )
    _add_bucket_options(parser)
    _add_catalog_option(parser)
    parser.add_argument("--table", required=True, help="the table (as named in the pipeline config)")
    parser.add_argument("--snapshot", required=True, type=cli_inputs.snapshot, help="snapshot id, YYYYMMDDTHHMMSSZ")
    _add_encoding_option(parser)
    parser.add_argument("file", type=Path, metavar="FILE", help="the table's CSV as exported")
    parser.set_defaults(run=_run_ingest)


def _run_ingest(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="snapcdc-ingest-") as work:
        source = cli_inputs.utf8_copy(cli_inputs.input_file(args.file, "FILE"), args.encoding, Path(work))
        return _ingest(args, source)


def _ingest(args: argparse.Namespace, source: Path) -> int:
    from snapcdc.cdc.stage import TableProcessor
    from snapcdc.lake.records import RefusalReason
    from snapcdc.ops.ingest import IngestRefused, ingest

    store, [table] = _bucket_store(args)
    try:
        done = ingest(TableProcessor(store, table, catalog=_catalog(args, store)), args.snapshot, source)
    except IngestRefused as refused:
        raise CliError(f"{args.file}: {refused}", EXIT_BAD_INPUT) from None
    for caught_up in done.records[:-1]:
        print(json.dumps(caught_up.summary_line()))
    record = done.record
    if record.refused_reason == RefusalReason.MALFORMED_INPUT:
        where = f"s3://{store.bucket}/{done.key}"
        fix = input_fix(str(record.error))
        message = str(record.error).replace(where, str(args.file)) + (f"; {fix}" if fix else "")
        print(f"snapcdc ingest: {one_line(message)}", file=sys.stderr)
    print(json.dumps({**record.summary_line(), "already_processed": done.already_processed}))
    if record.accepted:
        return EXIT_OK
    return EXIT_REFUSED if record.refused_reason == RefusalReason.DELETE_GUARD else EXIT_BAD_INPUT


# -- demo ----------------------------------------------------------------------------------------
def _add_demo(commands: argparse._SubParsersAction[Parser]) -> None:
    parser = commands.add_parser(
        "demo",
        help="the whole pipeline on this machine (embedded S3, fake Kaggle)",
        description="Writes into --out only when it is new, empty, or a folder an earlier demo made (it "
        "holds the marker file .snapcdc-demo); refuses any other folder (exit 3).",
        parents=[common_options()],
    )
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="where the bucket is copied")
    parser.add_argument(
        "--snapshots", type=cli_inputs.demo_runs, default=4, help="scheduled runs to simulate (3 to 24)"
    )
    parser.add_argument(
        "--serve",
        action="store_true",
        help="keep the embedded S3 running after the demo (until Ctrl-C) and print the environment "
        "that points verify, replay, ingest and DuckDB at it",
    )
    parser.set_defaults(run=_run_demo)


def _run_demo(args: argparse.Namespace) -> int:
    try:
        from snapcdc_dev.demo import DemoFolderError, run_demo
    except ModuleNotFoundError as missing:
        raise CliError(
            "the demo needs the development harness (package snapcdc-dev, devkit/ in the repository)",
            EXIT_ENVIRONMENT,
            "run `make demo`, or `pip install -e ./devkit` in this environment",
        ) from missing
    try:
        return run_demo(args.out, snapshots=args.snapshots, serve=args.serve)
    except DemoFolderError as error:
        raise CliError(str(error), EXIT_REFUSED, error.fix) from None


# -- entry point ---------------------------------------------------------------------------------
_COMMANDS: list[Callable[[argparse._SubParsersAction[Parser]], None]] = [
    _add_diff,
    _add_verify,
    _add_replay,
    _add_run,
    _add_ingest,
    _add_demo,
]


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="snapcdc", description="Snapshot change-data-capture tools")
    parser.add_argument("--version", action="version", version=f"snapcdc {version()}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of a failure")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for add in _COMMANDS:
        add(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs a command and returns its exit code. A failure is one line on stderr,
    ``snapcdc <command>: <what, where>; <what to do>``, with an exit code by class
    (:mod:`snapcdc.cli_failure`); ``--debug`` prints the traceback before it."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as done:  # --help, --version, or a usage error already printed on one line
        return done.code if isinstance(done.code, int) else EXIT_USAGE
    try:
        with pipeline_logs(args.debug):
            code: int = args.run(args)
    except (Exception, KeyboardInterrupt) as error:
        if args.debug:
            traceback.print_exc()
        failure = classify(error, debug_hint=not args.debug)
        print(f"snapcdc {args.command}: {failure.line}", file=sys.stderr)
        return failure.code
    return code


if __name__ == "__main__":
    sys.exit(main())
