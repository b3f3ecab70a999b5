"""The e2e lab: an embedded S3 (moto server on 127.0.0.1), the fake Kaggle API, and the real handlers.

Shared by the fault-injection suites (test_faults.py, test_faults_hostile.py). Each scenario ends
with ``lab.assert_verified()``: ``snapcdc.ops.verify`` passes for every table.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from snapcdc.config import load_config
from snapcdc.lake.layout import Layout, snapshot_id
from snapcdc.lake.store import S3Store
from snapcdc.ops.verify import verify
from snapcdc_dev.demo import BUCKET, FIRST_RUN, load_handler, local_stack
from snapcdc_dev.events import LocalLambdaContext, s3_object_created_event, scheduled_event
from snapcdc_dev.sample_data import LoyaltyDataset

from tests.support import object_versions

CONFIG = load_config()
MOMENTS = [FIRST_RUN + timedelta(hours=4 * i) for i in range(4)]


@dataclass
class Lab:
    aws: Any
    kaggle: Any
    store: S3Store
    dataset: LoyaltyDataset
    extract: Any
    cdc: Any
    tmp_path: Path = Path()
    capsys: pytest.CaptureFixture[str] | None = None
    _published: bool = False
    _printed: list[str] = field(default_factory=list)

    @property
    def work_dir(self) -> Path:
        """WORK_DIR of the extract function (its /tmp in Lambda)."""
        return self.tmp_path / "work"

    def publish_next(self) -> dict[str, bytes]:
        """Publish the next dataset version; returns its files."""
        if self._published:
            self.dataset.advance()
        files = self.dataset.files()
        self.kaggle.publish(CONFIG.dataset, files)
        self._published = True
        return files

    def publish_and_extract(self, moment: datetime) -> list[str]:
        """Publish the next dataset version and run the extract handler; returns the new raw CSV keys."""
        self.publish_next()
        self.run_extract(moment)
        return self.raw_keys(moment)

    def run_extract(self, moment: datetime, context: LocalLambdaContext | None = None) -> dict[str, Any]:
        """The extract handler for the scheduled event of ``moment``; returns its result."""
        result: dict[str, Any] = self.extract.lambda_handler(
            scheduled_event(moment), context or LocalLambdaContext("snapcdc-extract")
        )
        return result

    def raw_keys(self, moment: datetime) -> list[str]:
        """The raw CSV keys of the snapshot of ``moment``."""
        snap = snapshot_id(moment)
        return [k for k in self.store.list_keys("raw/") if f"snapshot={snap}/" in k and k.endswith(".csv")]

    def deliver(self, keys: list[str]) -> dict:
        event = s3_object_created_event(BUCKET, [(k, 1, "etag") for k in keys])
        return self.cdc.lambda_handler(event, LocalLambdaContext("snapcdc-cdc"))

    def raw_objects(self) -> set[str]:
        return set(self.store.list_keys("raw/"))

    def objects(self) -> dict[str, str]:
        """key -> ETag of every object in the bucket (to compare bucket states)."""
        return object_versions(self.store)

    def watch_stdout(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Read the handlers' stdout (Powertools prints EMF metrics there) from now on, in this test."""
        self.capsys, self._printed = capsys, []

    def metrics(self) -> list[dict[str, Any]]:
        """The CloudWatch EMF documents the handlers printed since :meth:`watch_stdout`."""
        if self.capsys is not None:
            self._printed.append(self.capsys.readouterr().out)
        lines = "".join(self._printed).splitlines()
        return [json.loads(line) for line in lines if line.startswith('{"_aws"')]

    def assert_verified(self) -> None:
        results = verify(self.store, list(CONFIG.tables))
        assert all(r.ok for r in results), [r.line() for r in results]


@contextlib.contextmanager
def open_lab(tmp_path: Path) -> Iterator[Lab]:
    """Embedded S3 + fake Kaggle + the Lambda environment (``local_stack``), and fresh handler modules."""
    with (
        (tmp_path / "lambda.log").open("w") as log,
        local_stack(tmp_path / "work", CONFIG.dataset, log) as (aws, kaggle),
    ):
        yield Lab(
            aws=aws,
            kaggle=kaggle,
            store=S3Store(aws.client("s3"), BUCKET, Layout()),
            dataset=LoyaltyDataset(seed=11, clients=200, transactions=300),
            extract=load_handler("extract"),
            cdc=load_handler("cdc"),
            tmp_path=tmp_path,
        )


@pytest.fixture
def lab(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Lab]:
    with open_lab(tmp_path) as lab:
        lab.watch_stdout(capsys)
        yield lab
