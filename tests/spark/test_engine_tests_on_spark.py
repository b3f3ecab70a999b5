"""Every named engine test (tests/unit/engine: test_diff, test_diff_streaming, test_diff_csv_input),
run again with ``diff_files`` and ``diff_tables`` replaced by the Spark engine."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.engine import test_diff, test_diff_csv_input, test_diff_streaming
from tests.unit.engine.test_diff import *  # noqa: F403
from tests.unit.engine.test_diff_csv_input import *  # noqa: F403
from tests.unit.engine.test_diff_streaming import *  # noqa: F403


@pytest.fixture(autouse=True)
def _spark_engine(on_spark: Any) -> None:
    on_spark(test_diff, test_diff_csv_input, test_diff_streaming)
