"""Every exception class the package defines derives from the one base, ``snapcdc.errors.SnapcdcError``:
handlers sort failures by kind (``PermanentError`` or not) and nothing escapes the tree."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest
import snapcdc
from snapcdc.errors import ControlSignal, PermanentError, SnapcdcError


def _package_exceptions() -> list[type[BaseException]]:
    found: dict[str, type[BaseException]] = {}
    for module_info in pkgutil.walk_packages(snapcdc.__path__, prefix="snapcdc."):
        module = importlib.import_module(module_info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and issubclass(value, BaseException) and value.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = value
    return [found[name] for name in sorted(found)]


EXCEPTIONS = _package_exceptions()


def test_the_walk_finds_the_package_exceptions():
    # Then (a walk that found nothing would pass every check below)
    names = {error.__name__ for error in EXCEPTIONS}
    assert {"SnapcdcError", "FeedError", "JavaMissingError", "Deferred", "CatalogError", "RecordError"} <= names


@pytest.mark.parametrize("error", EXCEPTIONS, ids=lambda error: f"{error.__module__}.{error.__name__}")
def test_every_exception_of_the_package_derives_from_snapcdc_error(error):
    # Then
    assert issubclass(error, SnapcdcError)


@pytest.mark.parametrize("signal", ["Deferred", "DeadlineReached", "Retryable", "CallerError", "TypedReadFailed"])
def test_control_signals_are_neither_failures_of_a_kind_nor_permanent(signal):
    # Given
    [error] = [e for e in EXCEPTIONS if e.__name__ == signal]
    # Then
    assert issubclass(error, ControlSignal)
    assert not issubclass(error, PermanentError)


@pytest.mark.parametrize(
    "name", ["CatalogError", "MigrationError", "RecordError", "SnapshotIdError", "JavaMissingError", "IngestRefused"]
)
def test_what_a_retry_cannot_fix_is_permanent(name):
    # Given
    [error] = [e for e in EXCEPTIONS if e.__name__ == name]
    # Then
    assert issubclass(error, PermanentError)
