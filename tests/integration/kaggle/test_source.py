"""The real kaggle client (2.2.4 / kagglesdk 0.1.37), wrapped by KaggleSource, against FakeKaggle on 127.0.0.1.

The retry policy, the guard and the deadline are exercised here through real HTTP; what needs no
server is in tests/unit/kaggle/.
"""

from __future__ import annotations

import io
import re
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
from moto import mock_aws
from snapcdc.extract.kaggle import (
    DatasetVersion,
    Deadline,
    KaggleAuthError,
    KaggleCredentials,
    KaggleDeadlineError,
    KaggleError,
    KaggleNotFoundError,
    KaggleOptions,
    KaggleSource,
    RetryPolicy,
)
from snapcdc.extract.kaggle import client as kaggle_client
from snapcdc.extract.kaggle.source import split_dataset_ref
from snapcdc_dev.fake_kaggle import BLOB_RPC, FakeKaggle, build_zip

from tests.support import csv_bytes

DATASET = "teocalvo/teomewhy-loyalty-system"
V1 = {"clientes.csv": csv_bytes(["idCliente", "qtdePontos"], [["a", 1], ["b", 2]])}
V2 = {"clientes.csv": csv_bytes(["idCliente", "qtdePontos"], [["a", 1], ["b", 3], ["c", 4]])}


class Sleeps(list[float]):
    """An injected sleep: records the delays instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


class FakeClock:
    """A clock that only the injected sleep moves: deadlines without waiting for them."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


RETRY_FIELDS = {"attempts", "base_delay", "max_delay", "min_attempt_seconds", "sleep", "jitter"}


def make_source(fake: FakeKaggle, tmp_path: Path, sleeps: Sleeps, **options: object) -> KaggleSource:
    """A source on ``fake``: ``options`` are fields of KaggleOptions or of its RetryPolicy."""
    settings: dict[str, object] = {"endpoint": fake.endpoint, "sleep": sleeps, "jitter": lambda: 0.5, **options}
    retry = RetryPolicy(**{k: v for k, v in settings.items() if k in RETRY_FIELDS})  # type: ignore[arg-type]
    rest = {k: v for k, v in settings.items() if k not in RETRY_FIELDS}
    credentials = KaggleCredentials(fake.username, fake.key)
    return KaggleSource(credentials, tmp_path / "work", KaggleOptions(retry=retry, **rest))  # type: ignore[arg-type]


def members(zip_path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(zip_path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def test_current_version_is_the_latest_published_version_and_its_time(fake_kaggle, tmp_path):
    # Given a dataset with two versions
    fake_kaggle.publish(DATASET, V1, published_at=datetime(2026, 1, 5, 8, 0, tzinfo=UTC))
    fake_kaggle.publish(DATASET, V2, published_at=datetime(2026, 1, 5, 12, 0, 30, tzinfo=UTC))
    source = make_source(fake_kaggle, tmp_path, Sleeps())

    # When
    version = source.current_version(DATASET)

    # Then one small GetDataset call answers it
    assert version == DatasetVersion(2, "2026-01-05T12:00:30Z")
    assert [r.rpc for r in fake_kaggle.requests] == ["GetDataset"]
    assert fake_kaggle.requests[0].body == {"ownerSlug": "teocalvo", "datasetSlug": "teomewhy-loyalty-system"}


def test_download_fetches_the_requested_version_through_the_redirect(fake_kaggle, tmp_path):
    # Given two versions
    fake_kaggle.publish(DATASET, V1)
    fake_kaggle.publish(DATASET, V2)
    source = make_source(fake_kaggle, tmp_path, Sleeps())

    # When version 1 is asked for
    path = source.download(DATASET, tmp_path / "dl", version=1)

    # Then the zip of version 1 is saved as <slug>.zip, via DownloadDataset + the blob GET
    assert path == tmp_path / "dl" / "teomewhy-loyalty-system.zip"
    assert members(path) == V1
    assert [r.rpc for r in fake_kaggle.requests] == ["DownloadDataset", BLOB_RPC]
    assert fake_kaggle.requests[0].body["datasetVersionNumber"] == 1


def test_download_of_the_current_version_served_directly(tmp_path):
    # Given a server that answers DownloadDataset with the bytes (no redirect)
    with FakeKaggle(redirect_downloads=False) as fake:
        fake.publish(DATASET, V1)
        fake.publish(DATASET, V2)
        source = make_source(fake, tmp_path, Sleeps())

        # When
        path = source.download(DATASET, tmp_path / "dl")

        # Then
        assert members(path) == V2
        assert [r.rpc for r in fake.requests] == ["DownloadDataset"]


@pytest.mark.parametrize("status", [429, 500, 503])
def test_version_check_retries_transient_errors_with_growing_backoff(fake_kaggle, tmp_path, status):
    # Given two transient failures before the answer
    fake_kaggle.publish(DATASET, V1)
    fake_kaggle.fail_next(status, times=2)
    sleeps = Sleeps()
    source = make_source(fake_kaggle, tmp_path, sleeps, base_delay=1.0)

    # When
    version = source.current_version(DATASET)

    # Then the third attempt succeeds, after two exponential waits
    assert version.number == 1
    assert fake_kaggle.request_count("GetDataset") == 3
    assert sleeps == [1.0, 2.0]


def test_download_retries_a_server_error_on_the_blob(fake_kaggle, tmp_path):
    # Given the blob store failing once
    fake_kaggle.publish(DATASET, V1)
    fake_kaggle.fail_next(500, rpc=BLOB_RPC)
    sleeps = Sleeps()
    source = make_source(fake_kaggle, tmp_path, sleeps)

    # When
    path = source.download(DATASET, tmp_path / "dl")

    # Then
    assert members(path) == V1
    assert [r.rpc for r in fake_kaggle.requests] == ["DownloadDataset", BLOB_RPC, "DownloadDataset", BLOB_RPC]
    assert len(sleeps) == 1


def test_persistent_failures_stop_after_the_attempt_budget_with_a_clear_error(fake_kaggle, tmp_path):
    # Given a server that keeps failing
    fake_kaggle.publish(DATASET, V1)
    fake_kaggle.fail_next(503, times=100)
    sleeps = Sleeps()
    source = make_source(fake_kaggle, tmp_path, sleeps, attempts=4, max_delay=5.0)

    # When / Then
    with pytest.raises(KaggleError, match=r"GetDataset teocalvo/teomewhy-loyalty-system failed after 4 attempts.*503"):
        source.current_version(DATASET)
    assert fake_kaggle.request_count() == 4  # no retry storm
    assert sleeps == [1.0, 2.0, 4.0]


def test_backoff_is_capped_and_jittered(fake_kaggle, tmp_path):
    # Given a failing server and a jitter at its extremes
    fake_kaggle.publish(DATASET, V1)
    fake_kaggle.fail_next(500, times=100)
    sleeps = Sleeps()
    jitters = iter([0.0, 0.999, 0.999])
    source = KaggleSource(
        KaggleCredentials(fake_kaggle.username, fake_kaggle.key),
        tmp_path,
        KaggleOptions(
            endpoint=fake_kaggle.endpoint,
            retry=RetryPolicy(base_delay=2.0, max_delay=5.0, sleep=sleeps, jitter=lambda: next(jitters)),
        ),
    )

    # When
    with pytest.raises(KaggleError):
        source.current_version(DATASET)

    # Then half the first delay, then 1.5x the second, then the cap
    assert sleeps == pytest.approx([1.0, 5.0, 5.0], abs=0.01)


def test_a_stalled_server_times_out_and_the_retry_succeeds(fake_kaggle, tmp_path):
    # Given the first request held far longer than the read timeout
    fake_kaggle.publish(DATASET, V1)
    fake_kaggle.delay_next(5.0, rpc="GetDataset")
    sleeps = Sleeps()
    source = make_source(fake_kaggle, tmp_path, sleeps, read_timeout=0.3)

    # When
    started = time.monotonic()
    version = source.current_version(DATASET)

    # Then the client gave up on the stalled answer instead of hanging
    assert version.number == 1
    assert time.monotonic() - started < 3.0
    assert len(sleeps) == 1


def test_a_stalled_download_times_out_and_the_retry_succeeds(fake_kaggle, tmp_path):
    # Given the blob held longer than the read timeout
    fake_kaggle.publish(DATASET, V1)
    fake_kaggle.delay_next(5.0, rpc=BLOB_RPC)
    source = make_source(fake_kaggle, tmp_path, Sleeps(), read_timeout=0.3)

    # When
    started = time.monotonic()
    path = source.download(DATASET, tmp_path / "dl")

    # Then
    assert members(path) == V1
    assert time.monotonic() - started < 3.0


def test_a_truncated_download_is_retried(fake_kaggle, tmp_path):
    # Given one body cut short of its Content-Length
    fake_kaggle.publish(DATASET, V1)
    fake_kaggle.truncate_next()
    sleeps = Sleeps()
    source = make_source(fake_kaggle, tmp_path, sleeps)

    # When
    path = source.download(DATASET, tmp_path / "dl")

    # Then the second, complete download is kept
    assert members(path) == V1
    assert fake_kaggle.request_count(BLOB_RPC) == 2
    assert len(sleeps) == 1


def test_always_truncated_downloads_fail_clearly_and_leave_no_partial_file(fake_kaggle, tmp_path):
    # Given every body cut short
    fake_kaggle.publish(DATASET, V1)
    fake_kaggle.truncate_next(times=100)
    source = make_source(fake_kaggle, tmp_path, Sleeps(), attempts=3)

    # When / Then
    with pytest.raises(KaggleError, match="after 3 attempts: short download"):
        source.download(DATASET, tmp_path / "dl")
    assert fake_kaggle.request_count(BLOB_RPC) == 3
    assert not list((tmp_path / "dl").glob("*.zip"))


def test_wrong_credentials_raise_an_auth_error_without_retrying(fake_kaggle, tmp_path):
    # Given a key the server does not accept
    fake_kaggle.publish(DATASET, V1)
    sleeps = Sleeps()
    source = KaggleSource(
        KaggleCredentials(fake_kaggle.username, "wrong-key"),
        tmp_path,
        KaggleOptions(endpoint=fake_kaggle.endpoint, retry=RetryPolicy(sleep=sleeps)),
    )

    # When / Then the message names what to set; one request, no sleeping
    with pytest.raises(KaggleAuthError, match=r"HTTP 401.*'username' and 'key'"):
        source.current_version(DATASET)
    assert fake_kaggle.request_count() == 1
    assert sleeps == []


def test_wrong_credentials_on_download_raise_an_auth_error_without_retrying(fake_kaggle, tmp_path):
    # Given an unknown user
    fake_kaggle.publish(DATASET, V1)
    source = KaggleSource(
        KaggleCredentials("someone", "else"),
        tmp_path,
        KaggleOptions(endpoint=fake_kaggle.endpoint, retry=RetryPolicy(sleep=Sleeps())),
    )

    # When / Then
    with pytest.raises(KaggleAuthError, match="'someone'"):
        source.download(DATASET, tmp_path / "dl")
    assert fake_kaggle.request_count() == 1


@pytest.mark.parametrize(
    ("username", "key", "named"), [("", "k", "username"), ("u", "", "key"), ("", "", "username and key")]
)
def test_empty_credentials_are_refused_before_any_request(fake_kaggle, tmp_path, username, key, named):
    # When / Then
    with pytest.raises(KaggleAuthError, match=f"Kaggle {named} is empty"):
        KaggleSource(KaggleCredentials(username, key), tmp_path, KaggleOptions(endpoint=fake_kaggle.endpoint))
    assert fake_kaggle.request_count() == 0


def test_the_clients_exit_on_missing_credentials_becomes_an_auth_error(fake_kaggle, tmp_path, monkeypatch):
    # Given an environment in which the kaggle client finds no credentials at all
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.delenv("KAGGLE_KEY", raising=False)

    def no_credentials(username: str, key: str, config_dir: Path) -> None:
        config_dir.mkdir(parents=True, exist_ok=True)

    monkeypatch.setattr(kaggle_client, "_prepare_environment", no_credentials)
    source = make_source(fake_kaggle, tmp_path, Sleeps())

    # When / Then authenticate()'s SystemExit(1) does not escape
    with pytest.raises(KaggleAuthError, match="no usable credentials"):
        source.current_version(DATASET)
    assert fake_kaggle.request_count() == 0


def test_an_unknown_dataset_is_not_found_without_retrying(fake_kaggle, tmp_path):
    # Given
    sleeps = Sleeps()
    source = make_source(fake_kaggle, tmp_path, sleeps)

    # When / Then
    with pytest.raises(KaggleNotFoundError, match=r"owner/nothing.*404"):
        source.current_version("owner/nothing")
    assert sleeps == []


def test_an_unreachable_endpoint_fails_after_the_attempt_budget(tmp_path):
    # Given a port nobody listens on (the fake is stopped again)
    with FakeKaggle() as fake:
        endpoint = fake.endpoint
    sleeps = Sleeps()
    source = KaggleSource(
        KaggleCredentials("u", "k"),
        tmp_path,
        KaggleOptions(endpoint=endpoint, retry=RetryPolicy(attempts=2, sleep=sleeps)),
    )

    # When / Then
    with pytest.raises(KaggleError, match="after 2 attempts: connection failed"):
        source.current_version(DATASET)
    assert len(sleeps) == 1


def test_a_bad_dataset_ref_is_refused():
    # When / Then
    with pytest.raises(ValueError, match="owner/slug"):
        split_dataset_ref("just-a-slug")


def test_moto_mock_aws_lets_the_kaggle_http_through(fake_kaggle, tmp_path):
    # Given moto's in-process mock, which also patches `requests` (with a passthrough for non-AWS URLs)
    fake_kaggle.publish(DATASET, V1)
    source = make_source(fake_kaggle, tmp_path, Sleeps())

    # When
    with mock_aws():
        version = source.current_version(DATASET)
        path = source.download(DATASET, tmp_path / "dl")

    # Then the calls reached the fake server
    assert version.number == 1
    assert members(path) == V1
    assert fake_kaggle.request_count() == 3


def test_the_fake_accepts_both_path_prefixes_and_basic_auth_only(fake_kaggle):
    # Given
    fake_kaggle.publish(DATASET, V1)
    body = {"ownerSlug": "teocalvo", "datasetSlug": "teomewhy-loyalty-system"}
    auth = (fake_kaggle.username, fake_kaggle.key)

    # When
    answers = [
        requests.post(
            f"{fake_kaggle.endpoint}{prefix}/datasets.DatasetApiService/GetDataset", json=body, auth=a, timeout=5
        )
        for prefix, a in [("/v1", auth), ("/api/v1", auth), ("/v1", None)]
    ]
    listing = requests.post(
        f"{fake_kaggle.endpoint}/v1/datasets.DatasetApiService/ListDatasetFiles", json=body, auth=auth, timeout=5
    )

    # Then
    assert [a.status_code for a in answers] == [200, 200, 401]
    assert answers[0].json()["currentVersionNumber"] == 1
    assert listing.json()["datasetFiles"][0]["name"] == "clientes.csv"
    assert listing.json()["datasetFiles"][0]["totalBytes"] == len(V1["clientes.csv"])


def test_the_fake_builds_the_same_zip_for_the_same_files(fake_kaggle, tmp_path):
    # Given the same files published twice
    fake_kaggle.publish(DATASET, V1)
    fake_kaggle.publish(DATASET, V1)
    source = make_source(fake_kaggle, tmp_path, Sleeps())

    # When
    first = source.download(DATASET, tmp_path / "a", version=1).read_bytes()
    second = source.download(DATASET, tmp_path / "b", version=2).read_bytes()

    # Then
    assert first == second
    assert zipfile.ZipFile(io.BytesIO(first)).testzip() is None


def test_the_fake_serves_the_clients_high_level_dataset_calls(fake_kaggle, tmp_path):
    # Given the KaggleApi instance KaggleSource configured
    fake_kaggle.publish(DATASET, V1)
    api = make_source(fake_kaggle, tmp_path, Sleeps())._api()

    # When the client's own high-level methods run against the fake
    api.dataset_download_files(DATASET, path=str(tmp_path / "hl"), unzip=True, quiet=True)
    status = api.dataset_status(DATASET, format="json")
    listed = [f.name for f in api.dataset_list_files(DATASET).files]

    # Then
    assert (tmp_path / "hl" / "clientes.csv").read_bytes() == V1["clientes.csv"]
    assert status == '{"status": "ready", "current_version_number": 1}'
    assert listed == ["clientes.csv"]
    assert {r.rpc for r in fake_kaggle.requests} == {
        "DownloadDataset",
        BLOB_RPC,
        "GetDatasetStatus",
        "GetDataset",
        "ListDatasetFiles",
    }


# -- the deadline: Kaggle work must end in time for the uploads, before Lambda kills the function --
def test_no_backoff_sleep_starts_that_could_not_end_before_the_deadline(fake_kaggle, tmp_path):
    # Given a server failing every request, a generous attempt budget, and 10 s until the deadline
    fake_kaggle.publish(DATASET, V1)
    fake_kaggle.fail_next(503, times=100)
    clock = FakeClock()
    deadline = Deadline.after(10.0, "10 s for the test", clock=clock)
    source = make_source(fake_kaggle, tmp_path, Sleeps(), attempts=10, deadline=deadline, sleep=clock.sleep)

    # When
    with pytest.raises(KaggleDeadlineError) as failure:
        source.current_version(DATASET)

    # Then backoffs of 1, 2 and 4 s fit (t = 7 s), the next 8 s would end past the deadline: not slept
    assert clock.sleeps == [1.0, 2.0, 4.0]
    assert fake_kaggle.request_count("GetDataset") == 4
    # and the error names the call, the deadline and what was attempted
    assert str(failure.value) == (
        f"Kaggle GetDataset {DATASET} stopped at its deadline: a retry after 8.0 s of backoff could not end "
        "before it (3.0 s left); 4 attempts made, the last failed: HTTP 503: injected HTTP 503. "
        "The deadline: 10 s for the test"
    )


def test_no_attempt_starts_with_less_time_left_than_an_attempt_needs(fake_kaggle, tmp_path):
    # Given half a second left, less than the one second an attempt is given at least
    fake_kaggle.publish(DATASET, V1)
    clock = FakeClock()
    deadline = Deadline.after(0.5, "half a second", clock=clock)
    source = make_source(fake_kaggle, tmp_path, Sleeps(), deadline=deadline, min_attempt_seconds=1.0)

    # When / Then nothing is asked of Kaggle
    with pytest.raises(KaggleDeadlineError, match=r"0\.5 s left, too little to start attempt 1; 0 attempts made"):
        source.download(DATASET, tmp_path / "dl")
    assert fake_kaggle.request_count() == 0


def test_a_slow_drip_download_is_cut_at_the_deadline_whatever_the_read_timeout(fake_kaggle, tmp_path):
    # Given a blob served one byte every 0.1 s: each read gets data long before the 120 s read timeout,
    # so only a cap on the whole call's time can stop it; the whole body would take many seconds
    fake_kaggle.publish(DATASET, V1)
    fake_kaggle.drip_next(0.1, chunk_bytes=1)
    zip_seconds = 0.1 * len(build_zip(V1))
    sleeps = Sleeps()
    source = make_source(fake_kaggle, tmp_path, sleeps, read_timeout=120.0, deadline=Deadline.after(2.0, "2 s"))

    # When
    started = time.monotonic()
    with pytest.raises(KaggleDeadlineError) as failure:
        source.download(DATASET, tmp_path / "dl", version=1)
    elapsed = time.monotonic() - started

    # Then the download was cut at the deadline, not carried on until the drip ended
    assert zip_seconds > 15
    assert elapsed < zip_seconds / 3
    assert re.match(
        rf"Kaggle DownloadDataset {DATASET} version 1 stopped at its deadline: attempt 1 was cut off "
        r"\(short download .*\); 1 attempt made\. The deadline: 2 s$",
        str(failure.value),
    ), str(failure.value)
    # with no retry and nothing left behind (no partial zip, no resume marker)
    assert sleeps == []
    assert fake_kaggle.request_count(BLOB_RPC) == 1
    assert list((tmp_path / "dl").iterdir()) == []


def test_a_stalled_version_check_is_cut_at_the_deadline_whatever_the_read_timeout(fake_kaggle, tmp_path):
    # Given Kaggle holding every version check for a minute, and a read timeout of two minutes
    fake_kaggle.publish(DATASET, V1)
    fake_kaggle.delay_next(60.0, times=10, rpc="GetDataset")
    source = make_source(fake_kaggle, tmp_path, Sleeps(), read_timeout=120.0, deadline=Deadline.after(2.0, "2 s"))

    # When
    started = time.monotonic()
    with pytest.raises(KaggleDeadlineError, match=r"GetDataset .* attempt 1 was cut off .*; 1 attempt made"):
        source.current_version(DATASET)

    # Then it gave up at the deadline, not after the held minute
    assert time.monotonic() - started < 20.0


def test_a_retry_that_fits_before_the_deadline_still_happens(fake_kaggle, tmp_path):
    # Given one transient failure and plenty of time left
    fake_kaggle.publish(DATASET, V1)
    fake_kaggle.fail_next(500)
    clock = FakeClock()
    source = make_source(fake_kaggle, tmp_path, Sleeps(), deadline=Deadline.after(60.0, clock=clock), sleep=clock.sleep)

    # When
    version = source.current_version(DATASET)

    # Then the retry policy is the usual one
    assert version.number == 1
    assert clock.sleeps == [1.0]
    assert fake_kaggle.request_count("GetDataset") == 2
