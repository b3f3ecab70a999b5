"""The Kaggle retry policy: a few attempts, exponential backoff with jitter, bounded by the deadline.

The client's own download loop retries 5 times with real, unbounded sleeps; snapcdc turns it off
(see :mod:`snapcdc.extract.kaggle.source`) and owns the policy here, as one object. Which failures are
worth retrying: HTTP 408, 425, 429 and 5xx gateway/server errors, timeouts, dropped connections and
short downloads (the body shorter than its ``Content-Length``). HTTP 401/403 are a
:class:`~snapcdc.extract.kaggle.errors.KaggleAuthError`, 404 a
:class:`~snapcdc.extract.kaggle.errors.KaggleNotFoundError`, both final. With a deadline, no attempt or
backoff sleep starts that cannot end before it, and an attempt cut off by the watchdog is a
:class:`~snapcdc.extract.kaggle.errors.KaggleDeadlineError` naming the deadline and the attempts made.
Running out of disk space is the caller's disk, not Kaggle: the ``OSError`` passes through,
neither retried nor wrapped (see :func:`snapcdc.extract.safe_zip.is_disk_full`); so does any failure an
attempt wraps in :class:`CallerError` (the S3 upload a download streams into).
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import requests
import urllib3.exceptions

from snapcdc.errors import ControlSignal
from snapcdc.extract.kaggle.errors import (
    CREDENTIALS_HINT,
    KaggleAuthError,
    KaggleDeadlineError,
    KaggleError,
    KaggleNotFoundError,
)
from snapcdc.extract.kaggle.guard import Guard
from snapcdc.extract.safe_zip import is_disk_full

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
AUTH_STATUS = frozenset({401, 403})


class Retryable(ControlSignal):
    """An attempt failed in a way worth retrying (raised by an attempt, or made by :func:`classify`)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CallerError(ControlSignal):
    """Wraps a failure of the caller's side inside an attempt (not Kaggle's): the retry policy raises
    ``error`` itself, neither retried nor classified."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class Caller:
    """Who is calling where, for the messages of final errors."""

    username: str
    endpoint: str


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a Kaggle call is tried.

    An attempt starts only with at least ``min_attempt_seconds`` left before the deadline.
    ``sleep`` and ``jitter`` are injectable so tests run without waiting.
    """

    attempts: int = 4
    base_delay: float = 1.0
    max_delay: float = 30.0
    min_attempt_seconds: float = 1.0
    sleep: Callable[[float], None] = time.sleep
    jitter: Callable[[], float] = random.random

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")

    def run(self, label: str, attempt: Callable[[], T], guard: Guard, caller: Caller) -> T:
        """``attempt()`` until it succeeds, fails for good, the attempts are spent or the deadline nears."""
        last = ""
        for number in range(1, self.attempts + 1):
            left = guard.left()
            if left is not None and left < self.min_attempt_seconds:
                raise _deadline_error(
                    guard, label, number - 1, last, f"{max(left, 0):.1f} s left, too little to start attempt {number}"
                )
            try:
                with guard.watching():
                    return attempt()
            except Exception as error:
                if is_disk_full(error):
                    raise  # the caller's disk, not Kaggle: not retried, not wrapped
                if isinstance(error, CallerError):
                    raise error.error from None  # the caller's side, not Kaggle: as it is
                classified = error if isinstance(error, Retryable) else classify(label, error, caller)
                if guard.reached():
                    earlier = f", after an earlier failure: {last}" if last else ""
                    why = f"attempt {number} was cut off ({classified}){earlier}"
                    raise _deadline_error(guard, label, number, "", why) from error
                if not isinstance(classified, Retryable):
                    raise classified from error
                last, retry_after = str(classified), classified.retry_after
            if number == self.attempts:
                break
            delay = self.backoff(number, retry_after)
            left = guard.left()
            if left is not None and delay + self.min_attempt_seconds > left:
                why = f"a retry after {delay:.1f} s of backoff could not end before it ({left:.1f} s left)"
                raise _deadline_error(guard, label, number, last, why)
            logger.warning(
                "Kaggle %s failed (attempt %d/%d): %s; retrying in %.1fs", label, number, self.attempts, last, delay
            )
            self.sleep(delay)
        raise KaggleError(f"Kaggle {label} failed after {self.attempts} attempts: {last}")

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based), honouring ``Retry-After``."""
        exponential = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        delay = exponential * (0.5 + self.jitter())  # jitter spreads concurrent retriers apart
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.max_delay))
        return min(delay, self.max_delay)


def classify(label: str, error: Exception, caller: Caller) -> Exception:
    """Map a client exception to a :class:`Retryable` or a final, clear error."""
    if isinstance(error, KaggleError):
        return error
    if isinstance(error, requests.HTTPError) and error.response is not None:
        status = error.response.status_code
        detail = _error_detail(error)
        if status in AUTH_STATUS:
            return KaggleAuthError(
                f"Kaggle refused the credentials of user {caller.username!r} on {label} "
                f"(HTTP {status}{detail}): {CREDENTIALS_HINT}"
            )
        if status in RETRYABLE_STATUS:
            return Retryable(f"HTTP {status}{detail}", _retry_after(error.response))
        if status == 404:
            return KaggleNotFoundError(f"Kaggle {label}: not found (HTTP 404{detail}) at {caller.endpoint}")
        return KaggleError(f"Kaggle {label} failed: HTTP {status}{detail}")
    if isinstance(error, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError):
        return Retryable(f"timed out ({type(error).__name__}: {error})")
    if isinstance(
        error,
        requests.ConnectionError
        | requests.exceptions.ChunkedEncodingError
        | urllib3.exceptions.ProtocolError
        | ConnectionError,
    ):
        kind = "short download" if "IncompleteRead" in str(error) else "connection failed"
        return Retryable(f"{kind} ({type(error).__name__}: {error})")
    if isinstance(error, ValueError) and "does not match expected size" in str(error):
        return Retryable(f"short download: {error}")  # KaggleApi.download_file's size check
    return KaggleError(f"Kaggle {label} failed: {type(error).__name__}: {error}")


def _deadline_error(guard: Guard, label: str, attempts: int, last: str, why: str) -> KaggleDeadlineError:
    deadline = guard.deadline
    assert deadline is not None
    made = f"{attempts} attempt{'s' if attempts != 1 else ''} made" + (f", the last failed: {last}" if last else "")
    return KaggleDeadlineError(
        f"Kaggle {label} stopped at its deadline: {why}; {made}. The deadline: {deadline.description}"
    )


def _error_detail(error: requests.HTTPError) -> str:
    message = str(error.args[0]) if error.args else ""
    return f": {message}" if message and not message[:3].isdigit() else ""


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
