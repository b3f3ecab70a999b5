"""Lambda environment settings, validated once at cold start (pydantic, no I/O)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from snapcdc.errors import PermanentError


class SettingsError(PermanentError, ValueError):
    """A Lambda environment variable is missing or invalid; the message names it.

    Permanent: a retry of the event runs with the same environment.
    """


class _Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    bucket_name: str = Field(alias="BUCKET_NAME", min_length=3)
    data_prefix: str = Field(default="", alias="DATA_PREFIX")
    pipeline_config: str | None = Field(default=None, alias="PIPELINE_CONFIG")
    # Local runs and tests point boto3 at an embedded S3 (moto server); unset in AWS.
    s3_endpoint_url: str | None = Field(default=None, alias="S3_ENDPOINT_URL")


class CdcSettings(_Settings):
    # The Glue database whose <table>_cdc/_full_load/_snapshots tables the function keeps current;
    # unset (local runs, tests): no catalog sync.
    glue_database: str | None = Field(default=None, alias="GLUE_DATABASE", min_length=1)
    # Tables past one Lambda (snapcdc.cdc.routing): raw objects larger than the threshold go to the Spark job.
    spark_job_name: str | None = Field(default=None, alias="SPARK_JOB_NAME", min_length=1)
    spark_threshold_bytes: int = Field(default=2**62, ge=0, alias="SPARK_THRESHOLD_BYTES")
    # The Glue database of the Iceberg tables (docs/iceberg.md); unset: GLUE_DATABASE's. Neither: none kept.
    iceberg_database: str | None = Field(default=None, alias="ICEBERG_DATABASE", min_length=1)

    @property
    def iceberg_catalog_database(self) -> str | None:
        return self.iceberg_database or self.glue_database


class ExtractSettings(_Settings):
    kaggle_secret_arn: str = Field(alias="KAGGLE_SECRET_ARN", min_length=1)
    # Only the fake Kaggle API of tests and the demo sets this; unset means api.kaggle.com.
    kaggle_endpoint: str | None = Field(default=None, alias="KAGGLE_ENDPOINT")
    work_dir: str = Field(default="/tmp/snapcdc", alias="WORK_DIR")
    # The Kaggle retry policy (defaults: snapcdc.extract.kaggle's) and the seconds of the invocation kept back
    # for streaming the archive's members to raw/: the Kaggle calls must be done by the remaining time minus this.
    kaggle_max_attempts: int = Field(default=4, ge=1, le=20, alias="KAGGLE_MAX_ATTEMPTS")
    kaggle_read_timeout_seconds: float = Field(default=120.0, gt=0, le=900, alias="KAGGLE_READ_TIMEOUT_SECONDS")
    upload_margin_seconds: float = Field(default=120.0, ge=0, le=900, alias="UPLOAD_MARGIN_SECONDS")


S = TypeVar("S", bound="_Settings")


def load_settings(kind: type[S], environ: Mapping[str, str] | None = None) -> S:
    """Read settings from the environment; a missing or bad variable is named in the error."""
    env = dict(os.environ if environ is None else environ)
    try:
        return kind.model_validate(env)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise SettingsError(f"invalid Lambda environment: {problems}") from None
