"""Fixtures of the integration tier: an empty bucket in in-process moto, and the store over it.

A module whose store needs another data prefix builds it on ``s3_client`` (its own ``store`` wins)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws
from snapcdc.lake.layout import Layout
from snapcdc.lake.store import S3Store

from tests.support import BUCKET


@pytest.fixture
def s3_client() -> Iterator[Any]:
    """An S3 client of in-process moto, holding one empty bucket, ``BUCKET``."""
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


@pytest.fixture
def store(s3_client: Any) -> S3Store:
    """The empty bucket seen through the store with DATA_PREFIX ``lake``."""
    return S3Store(s3_client, BUCKET, Layout("lake"))
