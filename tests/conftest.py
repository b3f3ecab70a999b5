"""Fixtures shared by every test tier. Keep them generic; tier-specific fixtures live beside their tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from snapcdc_dev.fake_kaggle import FakeKaggle

# --- extract side: AWS test credentials, the KAGGLE_* environment, the fake Kaggle API ---------------

_AWS_TEST_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(autouse=True)
def _aws_test_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test can reach a real AWS account: throwaway credentials and a fixed region."""
    for name, value in _AWS_TEST_ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(autouse=True)
def _restore_kaggle_environment() -> Iterator[None]:
    """KaggleSource sets KAGGLE_* variables for the kaggle client; undo that after each test."""
    saved = {name: value for name, value in os.environ.items() if name.startswith("KAGGLE_")}
    yield
    for name in [name for name in os.environ if name.startswith("KAGGLE_")]:
        del os.environ[name]
    os.environ.update(saved)


@pytest.fixture
def fake_kaggle() -> Iterator[FakeKaggle]:
    """A started fake Kaggle API on 127.0.0.1 (stopped after the test)."""
    with FakeKaggle() as fake:
        yield fake


# --- end of extract-side fixtures -----------------------------------------------------------------------
