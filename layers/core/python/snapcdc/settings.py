"""Lambda environment settings, validated once at cold start (pydantic, no I/O), and the names the
deployment passes them by: the functions' environment variables (:class:`Env`) and the Glue job's
arguments (:class:`JobArgument`). The stack imports these names instead of repeating them."""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from snapcdc.errors import PermanentError


class SettingsError(PermanentError, ValueError):
    """A Lambda environment variable is missing or invalid; the message names it.

    Permanent: a retry of the event runs with the same environment.
    """


class Env(StrEnum):
    """The functions' environment variables (set by the stack, read below and by the observability)."""

    BUCKET_NAME = "BUCKET_NAME"
    DATA_PREFIX = "DATA_PREFIX"
    PIPELINE_CONFIG = "PIPELINE_CONFIG"
    S3_ENDPOINT_URL = "S3_ENDPOINT_URL"
    GLUE_DATABASE = "GLUE_DATABASE"
    SPARK_JOB_NAME = "SPARK_JOB_NAME"
    SPARK_THRESHOLD_BYTES = "SPARK_THRESHOLD_BYTES"
    SPARK_JOB_TIMEOUT_MINUTES = "SPARK_JOB_TIMEOUT_MINUTES"
    SPARK_MAX_RESTARTS = "SPARK_MAX_RESTARTS"
    ICEBERG_DATABASE = "ICEBERG_DATABASE"  # docs/iceberg.md
    KAGGLE_SECRET_ARN = "KAGGLE_SECRET_ARN"  # noqa: S105 (the variable's name; its value is an ARN)
    KAGGLE_ENDPOINT = "KAGGLE_ENDPOINT"
    WORK_DIR = "WORK_DIR"
    KAGGLE_MAX_ATTEMPTS = "KAGGLE_MAX_ATTEMPTS"
    KAGGLE_READ_TIMEOUT_SECONDS = "KAGGLE_READ_TIMEOUT_SECONDS"
    UPLOAD_MARGIN_SECONDS = "UPLOAD_MARGIN_SECONDS"
    POWERTOOLS_SERVICE_NAME = "POWERTOOLS_SERVICE_NAME"
    POWERTOOLS_METRICS_NAMESPACE = "POWERTOOLS_METRICS_NAMESPACE"
    LOG_LEVEL = "LOG_LEVEL"
    # Read by numpy's OpenBLAS when it loads: the CDC function's is 1 (stacks/constructs/cdc.py says why).
    OPENBLAS_NUM_THREADS = "OPENBLAS_NUM_THREADS"


class JobArgument(StrEnum):
    """The Spark (Glue) job's arguments, passed as ``--NAME value`` (``-``: none, for the optional ones)."""

    TABLE = "TABLE"
    SNAPSHOT = "SNAPSHOT"
    BUCKET_NAME = "BUCKET_NAME"
    DATA_PREFIX = "DATA_PREFIX"
    GLUE_DATABASE = "GLUE_DATABASE"
    S3_ENDPOINT_URL = "S3_ENDPOINT_URL"
    JOB_RUN_ID = "JOB_RUN_ID"  # Glue adds it to every run: written into the claims the run takes
    SHUFFLE_PARTITIONS = "SHUFFLE_PARTITIONS"  # 0: from each raw object's size (snapcdc.spark.tuning)
    PARTITION_MB = "PARTITION_MB"

    @property
    def flag(self) -> str:
        """The argument as Glue passes it: ``--NAME``."""
        return f"--{self.value}"


class _Settings(BaseModel):
    # defer_build: a function builds the validator of its own settings only, on first use (cold start).
    model_config = ConfigDict(frozen=True, extra="ignore", defer_build=True)

    bucket_name: str = Field(validation_alias=Env.BUCKET_NAME.value, min_length=3)
    data_prefix: str = Field(default="", validation_alias=Env.DATA_PREFIX.value)
    pipeline_config: str | None = Field(default=None, validation_alias=Env.PIPELINE_CONFIG.value)
    # Local runs and tests point boto3 at an embedded S3 (moto server); unset in AWS.
    s3_endpoint_url: str | None = Field(default=None, validation_alias=Env.S3_ENDPOINT_URL.value)


class CdcSettings(_Settings):
    # The Glue database whose <table>_cdc/_full_load/_snapshots tables the function keeps current;
    # unset (local runs, tests): no catalog sync.
    glue_database: str | None = Field(default=None, validation_alias=Env.GLUE_DATABASE.value, min_length=1)
    # Tables past one Lambda (snapcdc.cdc.routing): raw objects larger than the threshold go to the Spark job.
    spark_job_name: str | None = Field(default=None, validation_alias=Env.SPARK_JOB_NAME.value, min_length=1)
    spark_threshold_bytes: int = Field(default=2**62, ge=0, validation_alias=Env.SPARK_THRESHOLD_BYTES.value)
    # A claim older than the job's timeout whose run never reported back is taken over (snapcdc.cdc.routing);
    # unset: never.
    spark_job_timeout_minutes: int | None = Field(
        default=None, ge=1, validation_alias=Env.SPARK_JOB_TIMEOUT_MINUTES.value
    )
    spark_max_restarts: int = Field(default=2, ge=0, le=10, validation_alias=Env.SPARK_MAX_RESTARTS.value)
    # The Glue database of the Iceberg tables (docs/iceberg.md); unset: GLUE_DATABASE's. Neither: none kept.
    iceberg_database: str | None = Field(default=None, validation_alias=Env.ICEBERG_DATABASE.value, min_length=1)

    @property
    def iceberg_catalog_database(self) -> str | None:
        return self.iceberg_database or self.glue_database


class SparkStateSettings(_Settings):
    """The Spark job's state-change handler (snapcdc.cdc.healing)."""

    spark_job_name: str = Field(validation_alias=Env.SPARK_JOB_NAME.value, min_length=1)
    spark_max_restarts: int = Field(default=2, ge=0, le=10, validation_alias=Env.SPARK_MAX_RESTARTS.value)


class ExtractSettings(_Settings):
    kaggle_secret_arn: str = Field(validation_alias=Env.KAGGLE_SECRET_ARN.value, min_length=1)
    # Only the fake Kaggle API of tests and the demo sets this; unset means api.kaggle.com.
    kaggle_endpoint: str | None = Field(default=None, validation_alias=Env.KAGGLE_ENDPOINT.value)
    work_dir: str = Field(default="/tmp/snapcdc", validation_alias=Env.WORK_DIR.value)
    # The Kaggle retry policy (defaults: snapcdc.extract.kaggle's) and the seconds of the invocation kept back
    # for streaming the archive's members to raw/: the Kaggle calls must be done by the remaining time minus this.
    kaggle_max_attempts: int = Field(default=4, ge=1, le=20, validation_alias=Env.KAGGLE_MAX_ATTEMPTS.value)
    kaggle_read_timeout_seconds: float = Field(
        default=120.0, gt=0, le=900, validation_alias=Env.KAGGLE_READ_TIMEOUT_SECONDS.value
    )
    upload_margin_seconds: float = Field(default=120.0, ge=0, le=900, validation_alias=Env.UPLOAD_MARGIN_SECONDS.value)


S = TypeVar("S", bound="_Settings")


def load_settings(kind: type[S], environ: Mapping[str, str] | None = None) -> S:
    """Read settings from the environment; a missing or bad variable is named in the error."""
    env = dict(os.environ if environ is None else environ)
    try:
        return kind.model_validate(env)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise SettingsError(f"invalid Lambda environment: {problems}") from None
