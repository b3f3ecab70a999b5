"""The Kaggle credentials, read from a Secrets Manager secret ``{"username": ..., "key": ...}``.

Powertools parameters fetches the secret and decodes its JSON. The read is fresh every time
(``force_fetch`` on a provider made for the call): the extract runs every few hours, so a cache
would save nothing, a key rotated after a refused run must be seen by the next one, and a cache on
a shared provider (the one behind ``parameters.get_secret``) would carry one test's secret into the
next. The provider uses the boto3 client it is given, so the caller's endpoint (``AWS_ENDPOINT_URL``
or ``S3_ENDPOINT_URL`` for the moto server of e2e tests and the demo) is honoured.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.utilities import parameters
from botocore.exceptions import ClientError

from snapcdc.extract.kaggle.errors import KaggleSecretError

# Secrets Manager errors a retry cannot fix (anything else, e.g. throttling, is raised as is).
_PERMANENT_CODES = frozenset({"ResourceNotFoundException", "AccessDeniedException", "DecryptionFailure"})
_FIELDS = ("username", "key")


@dataclass(frozen=True)
class KaggleCredentials:
    username: str
    key: str = field(repr=False)


def read_credentials(secret_id: str, client: Any) -> KaggleCredentials:
    """The credentials in ``secret_id``; ``client`` is a boto3 Secrets Manager client.

    A missing, unreadable or malformed secret is a :class:`KaggleSecretError` naming the secret
    (and the field); a transient failure of Secrets Manager is raised as boto3 raised it.
    """
    provider = parameters.SecretsProvider(boto3_client=client)
    try:
        document = provider.get(secret_id, transform="json", force_fetch=True)
    except (parameters.exceptions.TransformParameterError, UnicodeDecodeError):
        document = None  # not JSON
    except parameters.exceptions.GetParameterError as error:
        cause = error.__context__  # Powertools wraps the boto3 error without chaining it as a cause
        if not isinstance(cause, ClientError):
            raise
        code = cause.response.get("Error", {}).get("Code", "")
        if code in _PERMANENT_CODES:
            raise KaggleSecretError(f"Kaggle secret {secret_id} (KAGGLE_SECRET_ARN) cannot be read: {code}") from None
        raise cause from None
    if not isinstance(document, dict):
        raise KaggleSecretError(f'Kaggle secret {secret_id} must be a JSON object {{"username": ..., "key": ...}}')
    values = []
    for name in _FIELDS:
        value = document.get(name)
        if not isinstance(value, str) or not value.strip():
            raise KaggleSecretError(f"Kaggle secret {secret_id}: field '{name}' is missing or empty")
        values.append(value.strip())
    return KaggleCredentials(*values)
