"""The Kaggle side of the extract: the real ``kaggle`` client made safe for Lambda.

One job per module: :mod:`~snapcdc.extract.kaggle.source` (version checks and downloads),
:mod:`~snapcdc.extract.kaggle.client` (the client, imported late and patched), :mod:`~snapcdc.extract.kaggle.retry`
(the retry policy), :mod:`~snapcdc.extract.kaggle.guard` (the deadline and the socket watchdog),
:mod:`~snapcdc.extract.kaggle.secret` (the credentials from Secrets Manager), :mod:`~snapcdc.extract.kaggle.errors`.
"""

from snapcdc.extract.kaggle.errors import (
    KaggleAuthError,
    KaggleDeadlineError,
    KaggleError,
    KaggleNotFoundError,
    KaggleSecretError,
    TimeBudgetError,
)
from snapcdc.extract.kaggle.guard import Deadline
from snapcdc.extract.kaggle.retry import RetryPolicy
from snapcdc.extract.kaggle.secret import KaggleCredentials, read_credentials
from snapcdc.extract.kaggle.source import DatasetVersion, KaggleOptions, KaggleSource

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
