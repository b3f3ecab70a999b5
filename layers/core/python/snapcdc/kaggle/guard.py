"""A point in time the extract's Kaggle work must be done by (pure: a clock and a number).

In Lambda it is derived from the invocation's remaining time minus a margin kept back for what
comes after Kaggle (extracting the zip, the S3 uploads, the manifest), so a stalled Kaggle makes
the function fail clearly, with its metric, instead of being killed by the Lambda timeout.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from snapcdc.errors import PermanentError

MARGIN_SETTING = "UPLOAD_MARGIN_SECONDS"


class TimeBudgetError(PermanentError, ValueError):
    """The invocation has no time left for Kaggle once the margin for the uploads is kept back.

    Permanent: a retry gets the same function timeout and the same margin.
    """


@dataclass(frozen=True)
class Deadline:
    at: float  # a reading of ``clock``
    description: str  # how it was set, for error messages
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    @classmethod
    def after(cls, seconds: float, description: str = "", clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + seconds, description or f"{seconds:g} s from its start", clock)

    @classmethod
    def for_lambda(
        cls, remaining_ms: int, margin_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> Deadline:
        """The invocation's remaining time (``context.get_remaining_time_in_millis()``) minus the margin.

        A margin that leaves no time at all is a :class:`TimeBudgetError` (a retry cannot help).
        """
        remaining = remaining_ms / 1000
        budget = remaining - margin_seconds
        if budget <= 0:
            raise TimeBudgetError(
                f"the extract has {remaining:.0f} s left in this invocation, not more than "
                f"{MARGIN_SETTING}={margin_seconds:g} kept back for the S3 uploads: no time is left for Kaggle; "
                f"raise the function timeout (extract_timeout_minutes) or lower {MARGIN_SETTING}"
            )
        return cls.after(
            budget,
            f"{budget:.0f} s for Kaggle: the {remaining:.0f} s left in the Lambda invocation minus "
            f"{MARGIN_SETTING}={margin_seconds:g} kept for the S3 uploads",
            clock,
        )

    def remaining(self) -> float:
        """Seconds until the deadline (negative once it has passed)."""
        return self.at - self.clock()
