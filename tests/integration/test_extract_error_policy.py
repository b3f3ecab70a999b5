"""The extract handler's one error policy: a PermanentError is reported (no Lambda retry), anything else raised."""

from __future__ import annotations

from typing import Any

import pytest
from snapcdc.config import ConfigError
from snapcdc.errors import OutOfDiskSpaceError, PermanentError, SnapcdcError
from snapcdc.extract.kaggle import (
    KaggleAuthError,
    KaggleDeadlineError,
    KaggleError,
    KaggleNotFoundError,
    KaggleSecretError,
    TimeBudgetError,
)
from snapcdc.extract.safe_zip import UnsafeArchiveError
from snapcdc.extract.stage import ExtractPermissionError
from snapcdc.settings import SettingsError
from snapcdc_dev.demo import load_handler
from snapcdc_dev.events import LocalLambdaContext

POWERTOOLS_ENVIRONMENT = {
    "POWERTOOLS_SERVICE_NAME": "snapcdc-extract",
    "POWERTOOLS_METRICS_NAMESPACE": "snapcdc",
    "POWERTOOLS_TRACE_DISABLED": "true",
}
EVENT = {"version": "0", "detail-type": "Scheduled Event", "source": "aws.events", "time": "2026-01-05T09:00:00Z"}

# What a retry cannot fix, with the builtin base callers may still catch it by.
PERMANENT: list[tuple[type[Exception], type[Exception]]] = [
    (ConfigError, ValueError),
    (SettingsError, ValueError),
    (TimeBudgetError, ValueError),
    (UnsafeArchiveError, ValueError),
    (OutOfDiskSpaceError, RuntimeError),
    (ExtractPermissionError, RuntimeError),
    (KaggleAuthError, KaggleError),
    (KaggleSecretError, KaggleAuthError),
    (KaggleNotFoundError, KaggleError),
]
TRANSIENT = [KaggleError, KaggleDeadlineError]


@pytest.fixture(scope="module")
def handler() -> Any:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in POWERTOOLS_ENVIRONMENT.items():
            patch.setenv(name, value)
        yield load_handler("extract")


class FailingSettings:
    """Stands in for load_settings, the handler's first call into the core: fails with the given error."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def __call__(self, kind: type) -> Any:
        raise self.error


@pytest.mark.parametrize(("error_class", "builtin"), PERMANENT, ids=lambda c: c.__name__)
def test_every_permanent_error_derives_from_the_marker_and_keeps_its_builtin_base(error_class, builtin):
    # Then
    assert issubclass(error_class, PermanentError)
    assert issubclass(error_class, SnapcdcError)
    assert issubclass(error_class, builtin)


def test_the_handlers_event_error_is_permanent(handler):
    # Then
    assert issubclass(handler.EventError, PermanentError)
    assert issubclass(handler.EventError, ValueError)
    assert not hasattr(handler, "PERMANENT_ERRORS")


@pytest.mark.parametrize("error_class", TRANSIENT, ids=lambda c: c.__name__)
def test_kaggle_outages_and_deadlines_are_not_permanent(error_class):
    # Then
    assert issubclass(error_class, SnapcdcError)
    assert not issubclass(error_class, PermanentError)


@pytest.mark.parametrize(("error_class", "builtin"), PERMANENT, ids=lambda c: c.__name__)
def test_a_permanent_error_is_reported_without_a_retry(handler, monkeypatch, error_class, builtin):
    # Given the core failing for good
    monkeypatch.setattr(handler, "load_settings", FailingSettings(error_class("what was wrong, and where")))

    # When
    result = handler.lambda_handler(dict(EVENT), LocalLambdaContext("snapcdc-extract"))

    # Then
    assert result == {
        "status": "failed",
        "retryable": False,
        "error_type": error_class.__name__,
        "error": "what was wrong, and where",
    }


@pytest.mark.parametrize("error", [KaggleDeadlineError("stopped at its deadline"), KaggleError("HTTP 503"), OSError(5)])
def test_any_other_error_is_raised_so_lambda_retries_the_event(handler, monkeypatch, error):
    # Given the core failing in a way a later retry may not
    monkeypatch.setattr(handler, "load_settings", FailingSettings(error))

    # When / Then
    with pytest.raises(type(error)) as failure:
        handler.lambda_handler(dict(EVENT), LocalLambdaContext("snapcdc-extract"))
    assert failure.value is error
