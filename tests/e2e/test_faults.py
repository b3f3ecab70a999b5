"""Fault injection over the embedded S3 (moto server on 127.0.0.1) and the fake Kaggle API.

Each scenario ends with `verify` passing for every table and every raw object still present.
The `lab` fixture (tests/e2e/conftest.py) holds the embedded S3, the fake Kaggle and the real handlers.
"""

from __future__ import annotations

import threading

import pytest
from snapcdc.cdc.batch import process_raw_keys
from snapcdc.lake.layout import snapshot_id
from snapcdc.lake.ledger import processed_snapshots
from snapcdc.lake.store import S3Store
from snapcdc_dev.events import LocalLambdaContext, scheduled_event

from tests.e2e.conftest import CONFIG, MOMENTS


def test_the_same_event_delivered_twice_and_concurrently(lab):
    # Given two snapshots extracted
    first = lab.publish_and_extract(MOMENTS[0])
    lab.deliver(first)
    second = lab.publish_and_extract(MOMENTS[1])
    # When the second snapshot's event arrives from two threads at once, then once more
    errors: list[BaseException] = []

    def deliver() -> None:
        try:
            lab.deliver(second)
        except BaseException as error:  # surfaced below
            errors.append(error)

    threads = [threading.Thread(target=deliver) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    again = lab.deliver(second)
    # Then
    assert errors == []
    assert again["processed"] == []
    lab.assert_verified()


def test_out_of_order_delivery_and_a_lost_event_replayed_later(lab):
    # Given three snapshots extracted, their events held back
    keys = [lab.publish_and_extract(moment) for moment in MOMENTS[:3]]
    raw_before = lab.raw_objects()
    # When the newest arrives first, and the middle one is never delivered
    lab.deliver(keys[2])
    lab.deliver(keys[0])
    # Then catching up covered the lost one: no gap
    lab.assert_verified()
    assert lab.raw_objects() == raw_before
    for table in CONFIG.tables:
        assert processed_snapshots(lab.store, table.name) == [snapshot_id(m) for m in MOMENTS[:3]]
    # And a late delivery of the lost event is a no-op
    assert lab.deliver(keys[1])["processed"] == []


class FlakyS3Client:
    """An S3 client that fails its N-th call of one method, as S3 may part-way through a CDC run."""

    def __init__(self, client, method: str, fail_at: int) -> None:
        self._client, self._method, self._fail_at, self._calls = client, method, fail_at, 0

    def __getattr__(self, name):
        real = getattr(self._client, name)
        if name != self._method:
            return real

        def call(*args, **kwargs):
            self._calls += 1
            if self._calls == self._fail_at:
                raise ConnectionError(f"injected S3 failure on {name} call #{self._fail_at}")
            return real(*args, **kwargs)

        return call


def _flaky(store: S3Store, method: str, fail_at: int) -> S3Store:
    return S3Store(FlakyS3Client(store.client, method, fail_at), store.bucket, store.layout)


@pytest.mark.parametrize("fail_at", [1, 2, 3])
def test_an_s3_write_failing_part_way_then_the_retry(lab, fail_at):
    # Given a first snapshot done and a second extracted
    lab.deliver(lab.publish_and_extract(MOMENTS[0]))
    second = lab.publish_and_extract(MOMENTS[1])
    # When the CDC run's uploads fail part-way (the handler would raise and Lambda retry)
    report = process_raw_keys(_flaky(lab.store, "upload_file", fail_at), CONFIG, second)
    assert report.failures
    # Then the retry completes and the change stream is exact
    retry = lab.deliver(second)
    assert retry["failures"] == {}
    lab.assert_verified()


def test_killed_between_the_cdc_file_and_the_run_record_then_retried(lab):
    # Given
    lab.deliver(lab.publish_and_extract(MOMENTS[0]))
    second = lab.publish_and_extract(MOMENTS[1])
    # When the run records cannot be written (the function dies after writing cdc/)
    report = process_raw_keys(_flaky(lab.store, "put_object", 1), CONFIG, second[:1])
    table = next(iter(report.failures))
    assert lab.store.exists(lab.store.layout.cdc_key(table, snapshot_id(MOMENTS[1])))
    # Then the retry rewrites the same objects and writes the run record
    lab.deliver(second)
    lab.assert_verified()


def test_a_table_file_missing_from_the_dataset_is_reported_and_others_go_on(lab):
    # Given a dataset version without transacao_produto.csv
    files = lab.dataset.files()
    del files["transacao_produto.csv"]
    lab.kaggle.publish(CONFIG.dataset, files)
    # When
    summary = lab.extract.lambda_handler(scheduled_event(MOMENTS[0]), LocalLambdaContext("snapcdc-extract"))
    keys = [k for k in lab.store.list_keys("raw/") if k.endswith(".csv")]
    lab.deliver(keys)
    # Then
    assert "transacao_produto" in str(summary)
    assert {lab.store.layout.parse_raw_key(k).table for k in keys} == {"clientes", "produtos", "transacoes"}
    lab.assert_verified()


def test_two_extracts_for_adjacent_snapshots_at_once(lab):
    # Given a new dataset version
    lab.kaggle.publish(CONFIG.dataset, lab.dataset.files())
    # When the schedule fires while the previous run is still going (both in one process and /tmp)
    outcomes: dict[str, object] = {}

    def extract(moment) -> None:
        try:
            outcomes[snapshot_id(moment)] = lab.run_extract(moment)
        except BaseException as error:  # surfaced below
            outcomes[snapshot_id(moment)] = error

    threads = [threading.Thread(target=extract, args=(m,)) for m in MOMENTS[:2]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    keys = [k for k in lab.store.list_keys("raw/") if k.endswith(".csv")]
    lab.deliver(keys)
    # Then neither run failed (neither removed the other's files), and no file is left in the work dir
    assert set(outcomes) == {snapshot_id(m) for m in MOMENTS[:2]}
    assert not [o for o in outcomes.values() if isinstance(o, BaseException)], outcomes
    statuses = {result["status"] for result in outcomes.values()}  # type: ignore[index]
    assert statuses <= {"extracted", "skipped_unchanged", "superseded"}, outcomes
    assert not [p for p in (lab.work_dir / "extract").rglob("*")]
    # and both snapshots (or one, if the second saw the first's manifest) are consistent
    assert {lab.store.layout.parse_raw_key(k).snap for k in keys} <= {snapshot_id(m) for m in MOMENTS[:2]}
    lab.assert_verified()
