"""The whole chain over real HTTP: schedule event -> extract handler -> (the real kaggle client ->
fake Kaggle API) -> S3 (moto server on 127.0.0.1) -> S3 notification -> CDC handler -> Parquet."""

from __future__ import annotations

import io
from datetime import timedelta

import pyarrow.parquet as pq
import pytest
from snapcdc.config import load_config
from snapcdc.lake.layout import Layout, snapshot_id
from snapcdc.lake.ledger import read_run_record
from snapcdc.lake.store import S3Store
from snapcdc.ops.verify import verify
from snapcdc_dev.demo import BUCKET, FIRST_RUN, local_stack, run_pipeline_cycle
from snapcdc_dev.sample_data import LoyaltyDataset

CONFIG = load_config()


@pytest.fixture
def pipeline(tmp_path):
    with (
        (tmp_path / "lambda.log").open("w") as log,
        local_stack(tmp_path / "work", CONFIG.dataset, log, "lake") as (aws, kaggle),
    ):
        yield aws, kaggle, S3Store(aws.client("s3"), BUCKET, Layout("lake"))


def test_two_scheduled_runs_give_a_full_load_and_changes_in_every_table(pipeline):
    # Given two versions of the dataset, 4 hours apart, with inserts, updates and deletes in every table
    aws, kaggle, store = pipeline
    dataset = LoyaltyDataset(seed=7, clients=300, transactions=600)
    first, second = FIRST_RUN, FIRST_RUN + timedelta(hours=4)
    # When the schedule fires twice
    kaggle.publish(CONFIG.dataset, dataset.files())
    run_pipeline_cycle(aws, first, store.layout)
    dataset.advance()
    kaggle.publish(CONFIG.dataset, dataset.files())
    run_pipeline_cycle(aws, second, store.layout)
    # Then every table has a full load, a change set with all three operations, and run records
    for table in CONFIG.tables:
        assert store.exists(store.layout.full_load_key(table.name))
        changes = pq.read_table(io.BytesIO(store.get_bytes(store.layout.cdc_key(table.name, snapshot_id(second)))))
        assert set(changes["_cdc_operation"].to_pylist()) == {"I", "U", "D"}, table.name
        assert store.exists(store.layout.run_record_key(table.name, snapshot_id(second)))
    assert store.exists(store.layout.manifest_key(snapshot_id(second)))
    # And replaying full-load + cdc reproduces the newest snapshot
    assert [r.ok for r in verify(store, list(CONFIG.tables))] == [True] * 4
    # And without GLUE_DATABASE (the local stack sets none) the CDC function never touched Glue
    assert aws.client("glue").get_databases()["DatabaseList"] == []
    assert all(read_run_record(store, t.name, snapshot_id(second)).catalog_changes == [] for t in CONFIG.tables)


def test_an_unchanged_dataset_version_writes_no_new_snapshot(pipeline):
    # Given one run done
    aws, kaggle, store = pipeline
    kaggle.publish(CONFIG.dataset, LoyaltyDataset(seed=3, clients=50, transactions=50).files())
    run_pipeline_cycle(aws, FIRST_RUN, store.layout)
    before = sorted(store.list_keys("lake/"))
    # When the schedule fires again with no new Kaggle version
    run_pipeline_cycle(aws, FIRST_RUN + timedelta(hours=4), store.layout)
    # Then nothing was written
    assert sorted(store.list_keys("lake/")) == before
