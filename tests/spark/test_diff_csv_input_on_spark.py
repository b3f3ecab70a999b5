"""Every named engine test of tests/unit/engine/test_diff_csv_input.py, run again with ``diff_files`` and
``diff_tables`` replaced by the Spark engine (tests/spark/conftest.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.engine import test_diff_csv_input
from tests.unit.engine.test_diff_csv_input import *  # noqa: F403


@pytest.fixture(autouse=True)
def _spark_engine(on_spark: Any) -> None:
    on_spark(test_diff_csv_input)
