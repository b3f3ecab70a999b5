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
* A read timeout bounds each socket read, not a whole call: a server that drips a byte now and
  then never times out. With a :class:`~snapcdc.kaggle.guard.Deadline`, every timeout is clipped to
  the time left, no attempt or backoff sleep starts that cannot end before it, and a watchdog
  shuts the sockets of a call still running at the deadline (connecting, waiting or streaming):
  :class:`KaggleDeadlineError`, which names the deadline and the attempts made.
* Running out of disk space while downloading is not a Kaggle error: the ``OSError`` passes
  through, unretried (the caller names it; see :func:`snapcdc.safe_zip.is_disk_full`).
* ``endpoint`` points the client at another server (the fake Kaggle of tests and the demo).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import socket
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import requests
import urllib3.connection
import urllib3.connectionpool
import urllib3.exceptions
from botocore.exceptions import ClientError
from requests.adapters import HTTPAdapter

from snapcdc.errors import PermanentError, SnapcdcError
from snapcdc.kaggle.guard import Deadline
from snapcdc.safe_zip import is_disk_full

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
AUTH_STATUS = frozenset({401, 403})
_CREDENTIALS_HINT = (
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


@dataclass(frozen=True)
class DatasetVersion:
    number: int
    last_updated: str  # ISO 8601 UTC, e.g. 2025-01-15T10:20:30Z


class _Retryable(Exception):
    """Internal: an attempt failed in a way worth retrying."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _DeadlineReached(Exception):
    """Internal: a connection was about to open after the deadline."""


class _Guard:
    """Socket timeouts clipped to the deadline, and the watchdog that cuts connections at it.

    Every socket the client opens goes through :meth:`opened` (see :func:`_guarded_pool_classes`),
    so at the deadline the watchdog can shut it down, which wakes a read blocked on it whatever
    phase the call is in. Without a deadline only the fixed timeouts apply.
    """

    def __init__(self, connect_timeout: float, read_timeout: float, deadline: Deadline | None) -> None:
        self._timeouts = (connect_timeout, read_timeout)
        self.deadline = deadline
        self._sockets: weakref.WeakSet[socket.socket] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._cut = threading.Event()
        self.pool_classes = _guarded_pool_classes(self)

    def timeout(self, given: Any) -> tuple[float, float]:
        if isinstance(given, tuple):
            connect, read = given
        else:  # one number for both, or none given
            connect = read = given if isinstance(given, int | float) else None
        connect = self._timeouts[0] if connect is None else float(connect)
        read = self._timeouts[1] if read is None else float(read)
        if self.deadline is None:
            return connect, read
        left = max(self.deadline.remaining(), 0.01)
        return min(connect, left), min(read, left)

    def left(self) -> float | None:
        return None if self.deadline is None else self.deadline.remaining()

    def reached(self) -> bool:
        """The watchdog cut this attempt, or no time is left."""
        left = self.left()
        return self._cut.is_set() or (left is not None and left <= 0)

    def opened(self, sock: socket.socket) -> None:
        with self._lock:
            if self.reached():
                _shut(sock)
                raise _DeadlineReached("the deadline passed before the connection was made")
            self._sockets.add(sock)

    @contextlib.contextmanager
    def watching(self) -> Iterator[None]:
        """Run one attempt under the watchdog (a timer that fires at the deadline)."""
        if self.deadline is None:
            yield
            return
        self._cut.clear()
        timer = threading.Timer(max(self.deadline.remaining(), 0.0), self._cut_all)
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            with self._lock:
                self._sockets.clear()

    def _cut_all(self) -> None:
        with self._lock:
            self._cut.set()
            for sock in list(self._sockets):
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    # socket.socket's own shutdown, also for an SSLSocket: a plain TCP shutdown, which wakes a
    # thread blocked reading it (SSLSocket.shutdown would also drop its SSL object under it).
    with contextlib.suppress(OSError):  # already closed
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _guarded_pool_classes(guard: _Guard) -> dict[str, type[urllib3.connectionpool.HTTPConnectionPool]]:
    """urllib3 pool classes whose connections report their sockets to ``guard``."""

    class _Connection(urllib3.connection.HTTPConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            guard.opened(sock)
            return sock

    class _TLSConnection(urllib3.connection.HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            guard.opened(sock)  # cuts a stalled TLS handshake
            return sock

        def connect(self) -> None:
            super().connect()
            if self.sock is not None:
                guard.opened(self.sock)  # the SSL socket took over the plain one's descriptor

    class _Pool(urllib3.connectionpool.HTTPConnectionPool):
        ConnectionCls = _Connection

    class _TLSPool(urllib3.connectionpool.HTTPSConnectionPool):
        ConnectionCls = _TLSConnection

    return {"http": _Pool, "https": _TLSPool}


class _GuardedAdapter(HTTPAdapter):
    """Gives every request of a session its timeouts (requests has no session-wide default), clipped
    to the deadline, and opens connections the guard can cut."""

    def __init__(self, guard: _Guard) -> None:
        self._guard = guard  # before super().__init__, which builds the pool manager
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = self._guard.pool_classes

    def proxy_manager_for(self, proxy: Any, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        manager.pool_classes_by_scheme = self._guard.pool_classes
        return manager

    def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["timeout"] = self._guard.timeout(kwargs.get("timeout"))
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


def _build_api(username: str, key: str, config_dir: Path, endpoint: str | None, guard: _Guard) -> Any:
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
            adapter = _GuardedAdapter(guard)
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

    ``deadline``: when all Kaggle work must be over (None: no limit but the attempts and timeouts).
    An attempt starts only with at least ``min_attempt_seconds`` left before it.
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
        deadline: Deadline | None = None,
        min_attempt_seconds: float = 1.0,
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
        self._guard = _Guard(connect_timeout, read_timeout, deadline)
        self._min_attempt_seconds = min_attempt_seconds
        self._sleep = sleep
        self._jitter = jitter
        self._api_instance: Any = None

    @property
    def endpoint(self) -> str:
        return self._endpoint or "https://api.kaggle.com"

    def _api(self) -> Any:
        if self._api_instance is None:
            self._api_instance = _build_api(self._username, self._key, self._config_dir, self._endpoint, self._guard)
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
                        timeout=self._guard.timeout(None),
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
            outfile.with_name(outfile.name + ".kaggle-partial").unlink(missing_ok=True)  # the client's resume marker
            raise

    # -- retries ---------------------------------------------------------------------------
    def _with_retries(self, label: str, attempt: Callable[[], T]) -> T:
        last = ""
        for number in range(1, self._attempts + 1):
            left = self._guard.left()
            if left is not None and left < self._min_attempt_seconds:
                raise self._deadline_error(
                    label, number - 1, last, f"{max(left, 0):.1f} s left, too little to start attempt {number}"
                )
            try:
                with self._guard.watching():
                    return attempt()
            except Exception as error:
                if is_disk_full(error):
                    raise  # the caller's disk, not Kaggle: not retried, not wrapped
                classified = error if isinstance(error, _Retryable) else self._classify(label, error)
                if self._guard.reached():
                    earlier = f", after an earlier failure: {last}" if last else ""
                    why = f"attempt {number} was cut off ({classified}){earlier}"
                    raise self._deadline_error(label, number, "", why) from error
                if not isinstance(classified, _Retryable):
                    raise classified from error
                last, retry_after = str(classified), classified.retry_after
            if number == self._attempts:
                break
            delay = self._backoff(number, retry_after)
            left = self._guard.left()
            if left is not None and delay + self._min_attempt_seconds > left:
                why = f"a retry after {delay:.1f} s of backoff could not end before it ({left:.1f} s left)"
                raise self._deadline_error(label, number, last, why)
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

    def _deadline_error(self, label: str, attempts: int, last: str, why: str) -> KaggleDeadlineError:
        deadline = self._guard.deadline
        assert deadline is not None
        made = f"{attempts} attempt{'s' if attempts != 1 else ''} made" + (f", the last failed: {last}" if last else "")
        return KaggleDeadlineError(
            f"Kaggle {label} stopped at its deadline: {why}; {made}. The deadline: {deadline.description}"
        )

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
