"""The deadline of the Kaggle work (pure: a clock and a number)."""

from __future__ import annotations

import pytest
from snapcdc.errors import PermanentError
from snapcdc.extract.kaggle import Deadline, TimeBudgetError


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_lambda_deadline_is_the_remaining_time_minus_the_margin():
    # Given 300 s left in the invocation and a margin of 120 s
    clock = FakeClock(1000.0)

    # When
    deadline = Deadline.for_lambda(300_000, 120.0, clock=clock)

    # Then Kaggle has 180 s, and the description says where they come from
    assert deadline.remaining() == 180.0
    assert deadline.description == (
        "180 s for Kaggle: the 300 s left in the Lambda invocation "
        "minus UPLOAD_MARGIN_SECONDS=120 kept for the S3 uploads"
    )
    clock.now += 200.0
    assert deadline.remaining() == -20.0


@pytest.mark.parametrize("remaining_ms", [120_000, 60_000])
def test_a_margin_that_leaves_no_time_is_a_permanent_time_budget_error(remaining_ms):
    # When / Then
    with pytest.raises(TimeBudgetError, match="not more than UPLOAD_MARGIN_SECONDS=120") as failure:
        Deadline.for_lambda(remaining_ms, 120.0, clock=FakeClock(0.0))
    assert isinstance(failure.value, PermanentError)
    assert isinstance(failure.value, ValueError)
