"""The Kaggle side of the extract: the real ``kaggle`` client made safe for Lambda."""

from snapcdc.kaggle.guard import Deadline, TimeBudgetError
from snapcdc.kaggle.source import (
    DatasetVersion,
    KaggleAuthError,
    KaggleDeadlineError,
    KaggleError,
    KaggleNotFoundError,
    KaggleSecretError,
    KaggleSource,
    read_kaggle_secret,
)

__all__ = [
    "DatasetVersion",
    "Deadline",
    "KaggleAuthError",
    "KaggleDeadlineError",
    "KaggleError",
    "KaggleNotFoundError",
    "KaggleSecretError",
    "KaggleSource",
    "TimeBudgetError",
    "read_kaggle_secret",
]
