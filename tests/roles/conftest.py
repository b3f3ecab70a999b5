"""The run-under-the-roles tier: the stack's template, synthesized once per test process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.infra.synthesis import synthesize


@pytest.fixture(scope="session")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The template `make synth` writes (cdk.json defaults)."""
    return synthesize(Path(tmp_path_factory.mktemp("cdk-roles"))).template
