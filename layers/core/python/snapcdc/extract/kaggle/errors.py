"""The Kaggle side's errors: which ones a retry of the event cannot fix (:class:`~snapcdc.errors.PermanentError`)."""

from __future__ import annotations

from snapcdc.errors import PermanentError, SnapcdcError

CREDENTIALS_HINT = (
    "set a valid Kaggle username and API key (the Kaggle secret's 'username' and 'key' fields; "
    "a key is created at https://www.kaggle.com/settings -> API)"
)


class KaggleError(SnapcdcError, RuntimeError):
    """Kaggle could not be reached or answered with an error (after the retries, if retryable).

    Transient as far as the handler knows (an outage, throttling): Lambda retries the event.
    """


class KaggleAuthError(KaggleError, PermanentError):
    """Kaggle refused the credentials (or there are none). Never retried."""


class KaggleSecretError(KaggleAuthError):
    """The Secrets Manager secret with the Kaggle credentials is absent, unreadable or malformed."""


class KaggleNotFoundError(KaggleError, PermanentError):
    """The dataset (or the requested version) does not exist, or is not visible to this account."""


class KaggleDeadlineError(KaggleError):
    """The Kaggle work did not finish by its deadline (a stalled or slow Kaggle). Transient."""


class TimeBudgetError(PermanentError, ValueError):
    """The invocation has no time left for Kaggle once the margin for the uploads is kept back.

    Permanent: a retry gets the same function timeout and the same margin.
    """
