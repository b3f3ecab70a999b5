"""The Kaggle retry policy on its own: no server, an injected sleep and jitter."""

from __future__ import annotations

import errno

import pytest
from snapcdc.extract.kaggle import KaggleError, RetryPolicy
from snapcdc.extract.kaggle.guard import Guard
from snapcdc.extract.kaggle.retry import Caller, Retryable

CALLER = Caller("snapcdc-test", "http://127.0.0.1:1")


class Sleeps(list[float]):
    """An injected sleep: records the delays instead of waiting."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def no_deadline() -> Guard:
    return Guard(connect_timeout=10.0, read_timeout=120.0, deadline=None)


def test_running_out_of_disk_space_is_neither_retried_nor_wrapped_as_a_kaggle_error():
    # Given an attempt whose write hits a full disk (/dev/full answers every write with ENOSPC)
    sleeps = Sleeps()
    policy = RetryPolicy(sleep=sleeps, jitter=lambda: 0.5)
    calls: list[int] = []

    def attempt() -> None:
        calls.append(1)
        with open("/dev/full", "wb") as full:
            full.write(b"zip bytes")

    # When / Then the OSError reaches the caller as it is, after one attempt and no backoff
    with pytest.raises(OSError, match="No space left on device") as failure:
        policy.run("DownloadDataset owner/slug", attempt, no_deadline(), CALLER)
    assert failure.value.errno == errno.ENOSPC
    assert not isinstance(failure.value, KaggleError)
    assert calls == [1]
    assert sleeps == []


def test_a_retryable_failure_is_tried_again_after_the_backoff_and_the_budget_ends_it():
    # Given an attempt that always fails in a way worth retrying
    sleeps = Sleeps()
    policy = RetryPolicy(attempts=3, sleep=sleeps, jitter=lambda: 0.5)

    def attempt() -> None:
        raise Retryable("HTTP 503")

    # When / Then
    with pytest.raises(KaggleError, match=r"^Kaggle GetDataset o/s failed after 3 attempts: HTTP 503$"):
        policy.run("GetDataset o/s", attempt, no_deadline(), CALLER)
    assert sleeps == [1.0, 2.0]


def test_retry_after_lengthens_the_backoff_up_to_the_cap():
    # Given
    policy = RetryPolicy(base_delay=1.0, max_delay=30.0, jitter=lambda: 0.5)

    # When / Then a server's Retry-After wins over a shorter backoff, never over the cap
    assert policy.backoff(1, retry_after=None) == 1.0
    assert policy.backoff(1, retry_after=7.0) == 7.0
    assert policy.backoff(1, retry_after=600.0) == 30.0


def test_a_policy_without_attempts_is_refused():
    # When / Then
    with pytest.raises(ValueError, match="attempts must be at least 1"):
        RetryPolicy(attempts=0)
