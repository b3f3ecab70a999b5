"""Fixtures of the integration tier (a module's own ``store`` fixture, where it needs another, wins)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from moto import mock_aws
from snapcdc.lake.layout import Layout
from snapcdc.lake.store import S3Store

from tests.support import BUCKET


@pytest.fixture
def store() -> Iterator[S3Store]:
    """An empty bucket in moto, seen through the store with DATA_PREFIX ``lake``."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield S3Store(client, BUCKET, Layout("lake"))
