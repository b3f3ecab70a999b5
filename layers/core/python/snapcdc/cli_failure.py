"""How a ``snapcdc`` command fails: one line on stderr (what, where, what to do) and an exit code by
class of failure, the same for every subcommand (README, "CLI").

| code | class |
|---|---|
| 0 | done |
| 1 | a check found a problem (``verify``: a difference or a gap; ``run``: a table failed) |
| 2 | usage or input: an argument, option, file or config is wrong (the line names it) |
| 3 | refused by a guard: the delete guard, a folder the demo did not make |
| 4 | the bucket or AWS: no such bucket, no credentials, access denied, endpoint unreachable |
| 5 | this machine: Java missing for ``--engine spark``, the dev harness missing for ``demo`` |
| 70 | a bug in snapcdc: the line says so; ``--debug`` shows the traceback |

Pure: it maps an exception to a :class:`Failure`; the console script prints it.
"""

from __future__ import annotations

from dataclasses import dataclass

from snapcdc.errors import SnapcdcError

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_REFUSED = 3
EXIT_AWS = 4
EXIT_ENVIRONMENT = 5
EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130


class CliError(SnapcdcError):
    """A command's failure as the user should read it: what went wrong and where, what to do, and
    the exit code of its class."""

    def __init__(self, message: str, code: int = EXIT_USAGE, fix: str | None = None) -> None:
        self.code = code
        self.fix = fix
        super().__init__(message)


@dataclass(frozen=True)
class Failure:
    code: int
    line: str  # one line, no trailing newline


def one_line(text: str) -> str:
    """``text`` on one line: line breaks become ``; `` and runs of spaces one space."""
    parts = [part.strip() for part in str(text).replace("\r", "\n").split("\n")]
    return " ".join("; ".join(part for part in parts if part).split())


def _aws(error: BaseException) -> tuple[str, str] | None:
    """What an AWS client error means to an operator, and what to do; None if not one."""
    from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError, NoCredentialsError

    if isinstance(error, ClientError):
        info = error.response.get("Error", {})
        code, message = str(info.get("Code", "")), str(info.get("Message", ""))
        operation = error.operation_name
        if code in ("NoSuchBucket", "404") and operation in ("ListObjectsV2", "HeadBucket", "GetObject", "PutObject"):
            bucket = info.get("BucketName")
            where = f" {bucket}" if bucket else ""
            return f"no such bucket{where} ({operation})", "check --bucket and --endpoint-url"
        if code in ("AccessDenied", "AccessDeniedException", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
            return f"access denied ({operation}: {code})", "check the AWS credentials and the operator policy"
        return f"AWS error {code} in {operation}: {message}", "check --bucket, --endpoint-url and the credentials"
    if isinstance(error, NoCredentialsError):
        return "no AWS credentials found", "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"
    if isinstance(error, EndpointConnectionError):
        return f"cannot reach {error.kwargs.get('endpoint_url', 'the endpoint')}", "check --endpoint-url"
    if isinstance(error, BotoCoreError):
        return f"AWS client error: {error}", "check --endpoint-url, the region and the credentials"
    return None


def classify(error: BaseException, debug_hint: bool = True) -> Failure:
    """The exit code and the one line that describe ``error``."""
    from snapcdc.config import ConfigError
    from snapcdc.engine import DeleteGuardError, InputError
    from snapcdc.spark.session import JavaMissingError

    fix: str | None = None
    if isinstance(error, CliError):
        code, what, fix = error.code, str(error), error.fix
    elif isinstance(error, KeyboardInterrupt):
        code, what = EXIT_INTERRUPTED, "interrupted"
    elif isinstance(error, InputError):
        code, what, fix = EXIT_USAGE, str(error), input_fix(error.problem)
    elif isinstance(error, DeleteGuardError):
        code, what = EXIT_REFUSED, str(error)
    elif isinstance(error, ConfigError):
        code, what, fix = EXIT_USAGE, str(error), "correct the pipeline config (--config)"
    elif isinstance(error, JavaMissingError):
        code, what, fix = EXIT_ENVIRONMENT, str(error), "install Java 17 (or set JAVA_HOME), or use --engine lambda"
    elif (aws := _aws(error)) is not None:
        code, (what, fix) = EXIT_AWS, aws
    elif isinstance(error, SnapcdcError):
        code, what = EXIT_USAGE, str(error)
    elif isinstance(error, FileNotFoundError | IsADirectoryError | NotADirectoryError | PermissionError):
        code, what = EXIT_USAGE, f"{error.strerror}: {error.filename}" if error.filename else str(error)
    elif _is_arrow(error):
        code, what = EXIT_USAGE, f"cannot read a Parquet input: {error}"
        fix = "check that the file is a whole Parquet file"
    else:
        code = EXIT_INTERNAL
        what = f"internal error ({type(error).__name__}: {error})"
        fix = "rerun with --debug for the traceback and report it" if debug_hint else None
    line = one_line(what) + (f"; {fix}" if fix else "")
    return Failure(code, line)


def _is_arrow(error: BaseException) -> bool:
    import pyarrow as pa

    return isinstance(error, pa.ArrowException)


def input_fix(problem: str) -> str | None:
    """What to do about a malformed file, from the engine's description of the problem."""
    if "UTF-8" in problem:
        return "if the file is in another encoding, pass it (e.g. --encoding latin-1)"
    if "field limit" in problem or "field larger" in problem:
        return "a quote is probably not closed on that line"
    return None
