"""Synthesize the stack once per test process and share the template (each synth costs seconds)."""

from __future__ import annotations

import os
from typing import Any

import pytest

from .synthesis import Synth, synthesize

# Non-default values for every context key whose effect the tests check.
CUSTOM_CONTEXT: dict[str, Any] = {
    "data_prefix": "lake/",
    "bucket_name": "acme-snapcdc-lake",
    "schedule_expression": "cron(15 */6 * * ? *)",
    "raw_retention_days": "90",
    "raw_noncurrent_version_days": "10",
    "alarm_email": "data-team@example.com",
    "metrics_namespace": "acme/snapcdc",
    "extract_reserved_concurrency": "0",
    "cdc_memory_mb": "6144",
    "staleness_hours": "6",
    "glue_worker_type": "G.2X",
    "glue_number_of_workers": "20",
    "spark_threshold_mb": "500",
    "glue_timeout_minutes": "240",
    "glue_max_retries": "3",
    "glue_executor_memory_overhead_mb": "3072",
    "glue_shuffle_partitions": "400",
    "glue_partition_mb": "256",
    "glue_driver_max_result_mb": "1024",
    "glue_adaptive_execution": "false",
}


@pytest.fixture(scope="session")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The stack as `make synth` builds it (cdk.json defaults, placeholder kaggle layer)."""
    return synthesize(tmp_path_factory.mktemp("cdk-default"))


@pytest.fixture(scope="session")
def custom_synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    """The stack with a data prefix, a named bucket, a cron schedule and the other CUSTOM_CONTEXT."""
    return synthesize(tmp_path_factory.mktemp("cdk-custom"), CUSTOM_CONTEXT)


@pytest.fixture
def no_aws_environment(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The process environment with every AWS_* and CDK_DEFAULT_* variable removed."""
    for name in list(os.environ):
        if name.startswith(("AWS_", "CDK_DEFAULT_")):
            monkeypatch.delenv(name)
    return dict(os.environ)
