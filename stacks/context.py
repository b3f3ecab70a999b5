"""Typed, validated settings of the stack, read from the CDK context (``cdk.json`` or ``-c key=value``).

Every error names the context key, e.g. ``context key 'schedule_expression': ...``. Values given
on the command line arrive as strings, so numbers and booleans are parsed from strings too.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

DEFAULT_REGION = "us-east-1"
# Powertools for AWS Lambda (Python) v3, arm64, Python 3.12; layer version from the project's
# install docs (https://docs.powertools.aws.dev/lambda/python/latest/#lambda-layer). Newest per region: SSM parameter
# /aws/service/powertools/python/arm64/python3.12/latest.
DEFAULT_POWERTOOLS_LAYER_ARN = (
    "arn:aws:lambda:us-east-1:017000801446:layer:AWSLambdaPowertoolsPythonV3-python312-arm64:27"
)
# AWS SDK for pandas 3.17.0 (awswrangler, pandas, pyarrow, numpy), arm64, Python 3.12, us-east-1.
DEFAULT_AWS_SDK_PANDAS_LAYER_ARN = "arn:aws:lambda:us-east-1:336392948345:layer:AWSSDKPandas-Python312-Arm64:29"

# Values CloudWatch Logs accepts as a retention period, in days.
LOG_RETENTION_DAYS = (1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557)
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Glue 5.0 worker types for Spark jobs (G.025X is for streaming jobs only).
GLUE_WORKER_TYPES = ("G.1X", "G.2X", "G.4X", "G.8X")

_BUCKET_NAME = re.compile(r"^(?!xn--)(?!sthree-)(?!.*\.\.)[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_PREFIX = re.compile(r"^[A-Za-z0-9!_.*'()=-]+(/[A-Za-z0-9!_.*'()=-]+)*$")
_SCHEDULE = re.compile(r"^(rate\(([1-9]\d*) (minute|minutes|hour|hours|day|days)\)|cron\(\S+( \S+){5}\))$")
_LAYER_ARN = re.compile(r"^arn:aws[a-z-]*:lambda:(?P<region>[a-z]{2}(-[a-z]+)+-\d):\d{12}:layer:[A-Za-z0-9_-]+:\d+$")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_STACK_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{0,29}$")
_GLUE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_NAMESPACE = re.compile(r"^[A-Za-z0-9_./#:-]{1,255}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")


class ContextError(ValueError):
    """A CDK context value is missing or invalid; the message names the key."""


@dataclass(frozen=True)
class StackSettings:
    stack_name: str = "SnapCdc"
    region: str = DEFAULT_REGION
    # Storage
    bucket_name: str | None = None  # None: <stack name>-data-<account>-<region>
    data_prefix: str = ""  # keys live under <data_prefix>/raw/... ("" = bucket root)
    raw_noncurrent_version_days: int = 30
    raw_retention_days: int = 0  # 0 = keep raw snapshots forever
    access_log_retention_days: int = 365
    athena_results_retention_days: int = 30
    # Extract
    schedule_expression: str = "rate(4 hours)"
    schedule_enabled: bool = True
    extract_memory_mb: int = 1024
    extract_timeout_minutes: int = 10
    extract_ephemeral_storage_mb: int = 512  # the extract streams to S3: nothing in /tmp
    extract_reserved_concurrency: int = 1  # 0 = unreserved (accounts with a concurrency limit of 10)
    # CDC
    cdc_memory_mb: int = 4096
    cdc_timeout_minutes: int = 15
    cdc_ephemeral_storage_mb: int = 8192
    # A cap on concurrent CDC runs (one S3 event per raw CSV); 0 = unreserved. Throttled events wait
    # in Lambda's async queue and are retried (up to the CDC function's 6 h maximum event age).
    cdc_reserved_concurrency: int = 10
    # Tables past one Lambda: the Spark (AWS Glue 5) job, and the raw size from which it takes a snapshot.
    spark_threshold_mb: int = 0  # 0 = sized from cdc_memory_mb (see spark_threshold_bytes)
    glue_worker_type: str = "G.1X"
    glue_number_of_workers: int = 10
    glue_timeout_minutes: int = 120
    # A failed, timed-out or stopped run is started again this many times by the state-change handler
    # (Glue's own MaxRetries stays 0: two retry mechanisms would run one table twice at once).
    glue_max_retries: int = 2
    # Spark settings of the job (docs/deploy.md, "The Spark job"): memory for the executors' Python workers
    # (0: an eighth of the worker's memory), shuffle partitions (0: from the raw object's size, one per
    # glue_partition_mb), the driver's result cap, adaptive query execution.
    glue_executor_memory_overhead_mb: int = 0
    glue_shuffle_partitions: int = 0
    glue_partition_mb: int = 128
    glue_driver_max_result_mb: int = 2048
    glue_adaptive_execution: bool = True
    # Both functions
    powertools_layer_arn: str = DEFAULT_POWERTOOLS_LAYER_ARN
    aws_sdk_pandas_layer_arn: str = DEFAULT_AWS_SDK_PANDAS_LAYER_ARN
    log_level: str = "INFO"
    log_retention_days: int = 30
    build_layers: bool = False  # True only for deploy: use the pip-built kaggle layer
    # Observability and query
    metrics_namespace: str = "snapcdc"
    alarm_email: str | None = None
    staleness_hours: int = 12
    glue_database_name: str = "snapcdc"

    @property
    def spark_threshold_bytes(self) -> int:
        """Raw CSVs larger than this go to the Spark job. Default: half the CDC function's memory in CSV
        bytes (docs/engine.md: a 1.4 GB CSV peaks at 2.0 GB of memory; docs/scale.md)."""
        megabytes = self.spark_threshold_mb or self.cdc_memory_mb // 2
        return megabytes * 1024 * 1024

    @property
    def key_prefix(self) -> str:
        """The data prefix as S3 keys start with it: ``""`` or ``"lake/"``."""
        return f"{self.data_prefix}/" if self.data_prefix else ""

    @classmethod
    def from_context(cls, lookup: Callable[[str], Any]) -> StackSettings:
        """Build from ``node.try_get_context``-like lookups; absent keys keep their defaults."""
        read = _Reader(lookup)
        defaults = cls()
        region = read.string("region", defaults.region, _REGION, "an AWS region name like us-east-1")
        settings = cls(
            stack_name=read.string(
                "stack_name", defaults.stack_name, _STACK_NAME, "a letter, then up to 29 letters/digits/-"
            ),
            region=region,
            bucket_name=read.optional_string(
                "bucket_name", _BUCKET_NAME, "a valid S3 bucket name (3-63 chars, a-z 0-9 . -)"
            ),
            data_prefix=read.prefix("data_prefix"),
            raw_noncurrent_version_days=read.integer(
                "raw_noncurrent_version_days", defaults.raw_noncurrent_version_days, 1, 3650
            ),
            raw_retention_days=read.raw_retention("raw_retention_days"),
            access_log_retention_days=read.integer(
                "access_log_retention_days", defaults.access_log_retention_days, 1, 3650
            ),
            athena_results_retention_days=read.integer(
                "athena_results_retention_days", defaults.athena_results_retention_days, 1, 3650
            ),
            schedule_expression=read.string(
                "schedule_expression",
                defaults.schedule_expression,
                _SCHEDULE,
                "an EventBridge schedule such as 'rate(4 hours)' or 'cron(0 */4 * * ? *)'",
            ),
            schedule_enabled=read.boolean("schedule_enabled", defaults.schedule_enabled),
            extract_memory_mb=read.integer("extract_memory_mb", defaults.extract_memory_mb, 128, 10240),
            # At least 3: the extract keeps UPLOAD_MARGIN_SECONDS (120 s by default) of it for the uploads.
            extract_timeout_minutes=read.integer("extract_timeout_minutes", defaults.extract_timeout_minutes, 3, 15),
            extract_ephemeral_storage_mb=read.integer(
                "extract_ephemeral_storage_mb", defaults.extract_ephemeral_storage_mb, 512, 10240
            ),
            extract_reserved_concurrency=read.integer(
                "extract_reserved_concurrency", defaults.extract_reserved_concurrency, 0, 1000
            ),
            cdc_memory_mb=read.integer("cdc_memory_mb", defaults.cdc_memory_mb, 128, 10240),
            cdc_timeout_minutes=read.integer("cdc_timeout_minutes", defaults.cdc_timeout_minutes, 1, 15),
            cdc_ephemeral_storage_mb=read.integer(
                "cdc_ephemeral_storage_mb", defaults.cdc_ephemeral_storage_mb, 512, 10240
            ),
            cdc_reserved_concurrency=read.integer(
                "cdc_reserved_concurrency", defaults.cdc_reserved_concurrency, 0, 1000
            ),
            spark_threshold_mb=read.integer("spark_threshold_mb", defaults.spark_threshold_mb, 0, 10_000_000),
            glue_worker_type=read.choice("glue_worker_type", defaults.glue_worker_type, GLUE_WORKER_TYPES),
            glue_number_of_workers=read.integer("glue_number_of_workers", defaults.glue_number_of_workers, 2, 299),
            glue_timeout_minutes=read.integer("glue_timeout_minutes", defaults.glue_timeout_minutes, 1, 2880),
            glue_max_retries=read.integer("glue_max_retries", defaults.glue_max_retries, 0, 10),
            glue_executor_memory_overhead_mb=read.integer(
                "glue_executor_memory_overhead_mb", defaults.glue_executor_memory_overhead_mb, 0, 65536
            ),
            glue_shuffle_partitions=read.integer(
                "glue_shuffle_partitions", defaults.glue_shuffle_partitions, 0, 100_000
            ),
            glue_partition_mb=read.integer("glue_partition_mb", defaults.glue_partition_mb, 16, 4096),
            glue_driver_max_result_mb=read.integer(
                "glue_driver_max_result_mb", defaults.glue_driver_max_result_mb, 256, 65536
            ),
            glue_adaptive_execution=read.boolean("glue_adaptive_execution", defaults.glue_adaptive_execution),
            powertools_layer_arn=read.layer_arn("powertools_layer_arn", defaults.powertools_layer_arn, region),
            aws_sdk_pandas_layer_arn=read.layer_arn(
                "aws_sdk_pandas_layer_arn", defaults.aws_sdk_pandas_layer_arn, region
            ),
            log_level=read.choice("log_level", defaults.log_level, LOG_LEVELS),
            log_retention_days=read.choice_int("log_retention_days", defaults.log_retention_days, LOG_RETENTION_DAYS),
            build_layers=read.boolean("build_layers", defaults.build_layers),
            metrics_namespace=read.string(
                "metrics_namespace", defaults.metrics_namespace, _NAMESPACE, "a CloudWatch namespace"
            ),
            alarm_email=read.optional_string("alarm_email", _EMAIL, "an e-mail address"),
            staleness_hours=read.integer("staleness_hours", defaults.staleness_hours, 1, 24),
            glue_database_name=read.string(
                "glue_database_name", defaults.glue_database_name, _GLUE_NAME, "lower-case letters, digits, _"
            ),
        )
        return settings

    @classmethod
    def from_mapping(cls, context: Mapping[str, Any]) -> StackSettings:
        return cls.from_context(context.get)


class _Reader:
    def __init__(self, lookup: Callable[[str], Any]) -> None:
        self._lookup = lookup

    def _raw(self, key: str) -> Any:
        value = self._lookup(key)
        return None if value is None or (isinstance(value, str) and value.strip() == "") else value

    @staticmethod
    def fail(key: str, value: Any, expected: str) -> ContextError:
        return ContextError(f"context key {key!r}: got {value!r}, expected {expected}")

    def string(self, key: str, default: str, pattern: re.Pattern[str], expected: str) -> str:
        value = self._raw(key)
        if value is None:
            return default
        if not isinstance(value, str) or not pattern.match(value.strip()):
            raise self.fail(key, value, expected)
        return value.strip()

    def optional_string(self, key: str, pattern: re.Pattern[str], expected: str) -> str | None:
        value = self._raw(key)
        if value is None:
            return None
        if not isinstance(value, str) or not pattern.match(value.strip()):
            raise self.fail(key, value, expected)
        return value.strip()

    def integer(self, key: str, default: int, low: int, high: int) -> int:
        value = self._raw(key)
        if value is None:
            return default
        number = _to_int(value)
        if number is None or not low <= number <= high:
            raise self.fail(key, value, f"a whole number from {low} to {high}")
        return number

    def choice_int(self, key: str, default: int, allowed: tuple[int, ...]) -> int:
        value = self._raw(key)
        if value is None:
            return default
        number = _to_int(value)
        if number not in allowed:
            raise self.fail(key, value, f"one of {', '.join(map(str, allowed))}")
        return number

    def choice(self, key: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self._raw(key)
        if value is None:
            return default
        if not isinstance(value, str) or value.strip().upper() not in allowed:
            raise self.fail(key, value, f"one of {', '.join(allowed)}")
        return value.strip().upper()

    def boolean(self, key: str, default: bool) -> bool:
        value = self._raw(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in {"true", "false"}:
            return value.strip().lower() == "true"
        raise self.fail(key, value, "true or false")

    def prefix(self, key: str) -> str:
        value = self._raw(key)
        if value is None:
            return ""
        text = value.strip().strip("/") if isinstance(value, str) else None
        if text is None or (text and not _PREFIX.match(text)) or len(text) > 200:
            raise self.fail(key, value, "an S3 key prefix like 'lake' or 'teams/data' (safe characters only)")
        return text

    def raw_retention(self, key: str) -> int:
        days = self.integer(key, 0, 0, 36500)
        # raw/ snapshots are the diff base of the next run: a retention shorter than a week risks
        # expiring the base before an operator can replay a refused snapshot.
        if 0 < days < 7:
            raise self.fail(key, days, "0 (keep forever) or at least 7 days")
        return days

    def layer_arn(self, key: str, default: str, region: str) -> str:
        value = self._raw(key)
        arn = default if value is None else value
        match = _LAYER_ARN.match(arn.strip()) if isinstance(arn, str) else None
        if match is None:
            raise self.fail(key, value, "a Lambda layer version ARN (arn:aws:lambda:REGION:ACCOUNT:layer:NAME:N)")
        if match["region"] != region:
            raise ContextError(
                f"context key {key!r}: layer {arn} is in {match['region']}, but the stack deploys to"
                f" {region} (context key 'region'); Lambda needs the layer ARN of the function's region"
            )
        return arn.strip()


def _to_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value.strip())
    return None
