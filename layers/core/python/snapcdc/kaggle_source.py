"""The Kaggle side of the extract: the real ``kaggle`` client (2.2.4, kagglesdk 0.1.37), made safe for Lambda.

What this wrapper adds to ``KaggleApi`` (see ``/work/shared/KAGGLE.md`` for the facts behind it):

* ``import kaggle`` authenticates and reads its config dir at import time, and a read-only HOME
  breaks it: the environment (``KAGGLE_CONFIG_DIR`` under the work dir in /tmp, the credentials)
  is set first and kaggle is imported lazily, inside :meth:`KaggleSource._api`.
* No credentials make ``authenticate()`` call ``exit(1)``; a ``SystemExit`` is not an
  ``Exception``, so it is turned into :class:`KaggleAuthError` here.
* The client's own download loop retries 5 times with real, unbounded sleeps, and the first
  request has no timeout at all. We call the same low-level pieces the client uses
  (``DownloadDataset`` + ``KaggleApi.download_file``, which checks ``Content-Length``) with its
  retries off and a socket timeout, and own the retry policy: a few attempts, exponential
  backoff with jitter, an injectable sleep.
* ``endpoint`` points the client at another server (the fake Kaggle of tests and the demo).
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import requests
import urllib3.exceptions
from botocore.exceptions import ClientError
from requests.adapters import HTTPAdapter

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
AUTH_STATUS = frozenset({401, 403})
_CREDENTIALS_HINT = (
    "set a valid Kaggle username and API key (the Kaggle secret's 'username' and 'key' fields; "
    "a key is created at https://www.kaggle.com/settings -> API)"
)


class KaggleError(RuntimeError):
    """Kaggle could not be reached or answered with an error (after the retries, if retryable)."""


class KaggleAuthError(KaggleError):
    """Kaggle refused the credentials (or there are none). Never retried."""


class KaggleSecretError(KaggleAuthError):
    """The Secrets Manager secret with the Kaggle credentials is absent, unreadable or malformed."""


class KaggleNotFoundError(KaggleError):
    """The dataset (or the requested version) does not exist, or is not visible to this account."""


@dataclass(frozen=True)
class DatasetVersion:
    number: int
    last_updated: str  # ISO 8601 UTC, e.g. 2025-01-15T10:20:30Z


class _Retryable(Exception):
    """Internal: an attempt failed in a way worth retrying."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _TimeoutAdapter(HTTPAdapter):
    """Gives every request of a session a timeout (requests has no session-wide default)."""

    def __init__(self, timeout: tuple[float, float]) -> None:
        super().__init__(max_retries=0)
        self._timeout = timeout

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout
        return super().send(request, *args, **kwargs)


# Secrets Manager errors a retry cannot fix (anything else, e.g. throttling, is raised as is).
_SECRET_PERMANENT = {"ResourceNotFoundException", "AccessDeniedException", "DecryptionFailure"}


def read_kaggle_secret(client: Any, secret_id: str) -> tuple[str, str]:
    """(username, key) from a Secrets Manager secret ``{"username": ..., "key": ...}``.

    ``client`` is a boto3 Secrets Manager client. Errors name the secret and the field.
    """
    try:
        response = client.get_secret_value(SecretId=secret_id)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in _SECRET_PERMANENT:
            raise KaggleSecretError(f"Kaggle secret {secret_id} (KAGGLE_SECRET_ARN) cannot be read: {code}") from None
        raise
    text = response.get("SecretString")
    try:
        document = json.loads(text) if text else None
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise KaggleSecretError(f'Kaggle secret {secret_id} must be a JSON object {{"username": ..., "key": ...}}')
    values = []
    for field in ("username", "key"):
        value = document.get(field)
        if not isinstance(value, str) or not value.strip():
            raise KaggleSecretError(f"Kaggle secret {secret_id}: field '{field}' is missing or empty")
        values.append(value.strip())
    return values[0], values[1]


def split_dataset_ref(dataset: str) -> tuple[str, str]:
    owner, _, slug = dataset.partition("/")
    if not owner or not slug or "/" in slug:
        raise ValueError(f"Kaggle dataset must be 'owner/slug', got {dataset!r}")
    return owner, slug


def _prepare_environment(username: str, key: str, config_dir: Path) -> None:
    """Environment the kaggle package reads at import and authenticate time."""
    config_dir.mkdir(parents=True, exist_ok=True)
    if "kaggle" not in sys.modules:
        # Read once, when the KaggleApi class body runs at import: must be writable (/tmp).
        os.environ["KAGGLE_CONFIG_DIR"] = str(config_dir)
    os.environ["KAGGLE_USERNAME"] = username
    os.environ["KAGGLE_KEY"] = key
    # kagglesdk prefers a bearer token from the environment over the username/key we were given.
    os.environ.pop("KAGGLE_API_TOKEN", None)


def _build_api(username: str, key: str, config_dir: Path, endpoint: str | None, timeout: tuple[float, float]) -> Any:
    _prepare_environment(username, key, config_dir)
    from kaggle.api.kaggle_api_extended import KaggleApi  # env must be set first
    from kagglesdk.kaggle_env import KaggleEnv

    class _SnapcdcKaggleApi(KaggleApi):  # type: ignore[misc, valid-type]
        def build_kaggle_client(self) -> Any:
            if endpoint is None:
                client = super().build_kaggle_client()
            else:
                # Production URL scheme (<endpoint>/v1/<Service>/<Method>) on another host. The
                # kagglesdk endpoint table is global and only has fixed hosts (TEST is
                # localhost:7777 and ignored by KaggleApi), so we set this one client's endpoint.
                client = KaggleApi.build_kaggle_client_with_params(
                    args=[],
                    username=self.config_values.get(self.CONFIG_NAME_USER),
                    password=self.config_values.get(self.CONFIG_NAME_KEY),
                    response_processor=self.get_response_processor(),
                )
                http = client.http_client()
                if not hasattr(http, "_endpoint"):
                    raise KaggleError("this kagglesdk version has no KaggleHttpClient._endpoint to override")
                http._endpoint = endpoint.rstrip("/")
                http._env = KaggleEnv.PROD
            # kagglesdk sends without a timeout: a stalled server would hang the Lambda until
            # its own timeout. The session is created lazily; create it now to mount the adapter.
            http = client.http_client()
            http._init_session()
            adapter = _TimeoutAdapter(timeout)
            http._session.mount("http://", adapter)
            http._session.mount("https://", adapter)
            return client

    api = _SnapcdcKaggleApi()
    # The class-level config path was fixed at the first import; this instance uses its own dir.
    api.config_dir = str(config_dir)
    api.config = str(config_dir / "kaggle.json")
    try:
        api.authenticate()
    except SystemExit:  # the client calls exit(1) when it finds no credentials
        raise KaggleAuthError(f"the kaggle client found no usable credentials: {_CREDENTIALS_HINT}") from None
    return api


class KaggleSource:
    """Version checks and downloads of one Kaggle account, with bounded retries.

    ``sleep`` and ``jitter`` are injectable so tests run without waiting.
    """

    def __init__(
        self,
        username: str,
        key: str,
        work_dir: Path,
        endpoint: str | None = None,
        *,
        attempts: int = 4,
        base_delay: float = 1.0,
        max_delay: float = 30.0,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        if not username or not key:
            missing = " and ".join(n for n, v in (("username", username), ("key", key)) if not v)
            raise KaggleAuthError(f"Kaggle {missing} is empty: {_CREDENTIALS_HINT}")
        if attempts < 1:
            raise ValueError("attempts must be at least 1")
        self._username = username
        self._key = key
        self._config_dir = Path(work_dir) / "kaggle-config"
        self._endpoint = endpoint
        self._attempts = attempts
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._timeout = (connect_timeout, read_timeout)
        self._sleep = sleep
        self._jitter = jitter
        self._api_instance: Any = None

    @property
    def endpoint(self) -> str:
        return self._endpoint or "https://api.kaggle.com"

    def _api(self) -> Any:
        if self._api_instance is None:
            self._api_instance = _build_api(self._username, self._key, self._config_dir, self._endpoint, self._timeout)
        return self._api_instance

    # -- public API ------------------------------------------------------------------------
    def current_version(self, dataset: str) -> DatasetVersion:
        """The dataset's current version number and update time (one small ``GetDataset`` call)."""
        owner, slug = split_dataset_ref(dataset)

        def attempt() -> DatasetVersion:
            from kagglesdk.datasets.types.dataset_api_service import ApiGetDatasetRequest

            api = self._api()
            request = ApiGetDatasetRequest()
            request.owner_slug = owner
            request.dataset_slug = slug
            with api.build_kaggle_client() as kaggle:
                response = kaggle.datasets.dataset_api_client.get_dataset(request)
            number = response.current_version_number
            if not number:
                raise KaggleError(f"Kaggle GetDataset for {dataset} returned no currentVersionNumber")
            return DatasetVersion(int(number), _iso_utc(response.last_updated))

        return self._with_retries(f"GetDataset {dataset}", attempt)

    def download(self, dataset: str, dest_dir: Path, version: int | None = None) -> Path:
        """Download the dataset's zip (a given version, or the current one) to ``dest_dir``."""
        owner, slug = split_dataset_ref(dataset)
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        outfile = dest_dir / f"{slug}.zip"
        label = f"DownloadDataset {dataset}" + (f" version {version}" if version else "")

        def attempt() -> Path:
            from kagglesdk.datasets.types.dataset_api_service import ApiDownloadDatasetRequest

            api = self._api()
            request = ApiDownloadDatasetRequest()
            request.owner_slug = owner
            request.dataset_slug = slug
            request.dataset_version_number = version
            outfile.unlink(missing_ok=True)  # never resume onto a partial from a failed attempt
            with api.build_kaggle_client() as kaggle:
                response = kaggle.datasets.dataset_api_client.download_dataset(request)
                try:
                    # The client's own streaming writer: checks the size against Content-Length.
                    api.download_file(
                        response,
                        str(outfile),
                        kaggle.http_client(),
                        quiet=True,
                        resume=False,
                        max_retries=0,
                        timeout=self._timeout,
                    )
                finally:
                    response.close()
            if not outfile.is_file():
                raise _Retryable("the download produced no file")
            return outfile

        try:
            return self._with_retries(label, attempt)
        except BaseException:
            outfile.unlink(missing_ok=True)
            raise

    # -- retries ---------------------------------------------------------------------------
    def _with_retries(self, label: str, attempt: Callable[[], T]) -> T:
        last = ""
        for number in range(1, self._attempts + 1):
            try:
                return attempt()
            except _Retryable as error:
                last, retry_after = str(error), error.retry_after
            except Exception as error:
                classified = self._classify(label, error)
                if not isinstance(classified, _Retryable):
                    raise classified from error
                last, retry_after = str(classified), classified.retry_after
            if number == self._attempts:
                break
            delay = self._backoff(number, retry_after)
            logger.warning(
                "Kaggle %s failed (attempt %d/%d): %s; retrying in %.1fs",
                label,
                number,
                self._attempts,
                last,
                delay,
            )
            self._sleep(delay)
        raise KaggleError(f"Kaggle {label} failed after {self._attempts} attempts: {last}")

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        exponential = min(self._max_delay, self._base_delay * 2 ** (attempt - 1))
        delay = exponential * (0.5 + self._jitter())  # jitter spreads concurrent retriers apart
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._max_delay))
        return min(delay, self._max_delay)

    def _classify(self, label: str, error: Exception) -> Exception:
        """Map a client exception to a retryable marker or a final, clear error."""
        if isinstance(error, KaggleError):
            return error
        if isinstance(error, requests.HTTPError) and error.response is not None:
            status = error.response.status_code
            detail = _error_detail(error)
            if status in AUTH_STATUS:
                return KaggleAuthError(
                    f"Kaggle refused the credentials of user {self._username!r} on {label} "
                    f"(HTTP {status}{detail}): {_CREDENTIALS_HINT}"
                )
            if status in RETRYABLE_STATUS:
                return _Retryable(f"HTTP {status}{detail}", _retry_after(error.response))
            if status == 404:
                return KaggleNotFoundError(f"Kaggle {label}: not found (HTTP 404{detail}) at {self.endpoint}")
            return KaggleError(f"Kaggle {label} failed: HTTP {status}{detail}")
        if isinstance(error, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError):
            return _Retryable(f"timed out ({type(error).__name__}: {error})")
        if isinstance(
            error,
            requests.ConnectionError
            | requests.exceptions.ChunkedEncodingError
            | urllib3.exceptions.ProtocolError
            | ConnectionError,
        ):
            kind = "short download" if "IncompleteRead" in str(error) else "connection failed"
            return _Retryable(f"{kind} ({type(error).__name__}: {error})")
        if isinstance(error, ValueError) and "does not match expected size" in str(error):
            return _Retryable(f"short download: {error}")  # KaggleApi.download_file's size check
        return KaggleError(f"Kaggle {label} failed: {type(error).__name__}: {error}")


def _error_detail(error: requests.HTTPError) -> str:
    message = str(error.args[0]) if error.args else ""
    return f": {message}" if message and not message[:3].isdigit() else ""


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def _iso_utc(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:  # kagglesdk parses "...Z" into a naive datetime
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
