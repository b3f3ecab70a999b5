"""The Kaggle side of the extract: the real ``kaggle`` client made safe for Lambda.

One job per module: :mod:`~snapcdc.kaggle.source` (version checks and downloads),
:mod:`~snapcdc.kaggle.client` (the client, imported late and patched), :mod:`~snapcdc.kaggle.retry`
(the retry policy), :mod:`~snapcdc.kaggle.guard` (the deadline and the socket watchdog),
:mod:`~snapcdc.kaggle.secret` (the credentials from Secrets Manager), :mod:`~snapcdc.kaggle.errors`.
"""

from snapcdc.kaggle.errors import (
    KaggleAuthError,
    KaggleDeadlineError,
    KaggleError,
    KaggleNotFoundError,
    KaggleSecretError,
    TimeBudgetError,
)
from snapcdc.kaggle.guard import Deadline
from snapcdc.kaggle.retry import RetryPolicy
from snapcdc.kaggle.secret import KaggleCredentials, read_credentials
from snapcdc.kaggle.source import DatasetVersion, KaggleOptions, KaggleSource

__all__ = [
    "DatasetVersion",
    "Deadline",
    "KaggleAuthError",
    "KaggleCredentials",
    "KaggleDeadlineError",
    "KaggleError",
    "KaggleNotFoundError",
    "KaggleOptions",
    "KaggleSecretError",
    "KaggleSource",
    "RetryPolicy",
    "TimeBudgetError",
    "read_credentials",
]
