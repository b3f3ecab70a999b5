"""Version checks and downloads of one Kaggle dataset through the real ``kaggle`` client.

The client's own download loop retries 5 times with real, unbounded sleeps, and its first request
has no timeout at all. :class:`KaggleSource` calls the same low-level pieces the client uses
(``GetDataset``; ``DownloadDataset`` + ``KaggleApi.download_file``, which checks the size against
``Content-Length``) with the client's retries off, under the :class:`~snapcdc.extract.kaggle.guard.Guard`
(socket timeouts, the deadline's watchdog) and the :class:`~snapcdc.extract.kaggle.retry.RetryPolicy`.
The client itself is built on first use (:func:`snapcdc.extract.kaggle.client.build_api`).

:meth:`KaggleSource.download_to` streams the body into a :class:`DownloadSink` (the extract's S3
multipart upload) instead of a file: the same request, guard and retry policy, the same
``Content-Length`` check as the client's writer (with its message, so a short body is retried the
same way). Each attempt opens a fresh sink and aborts it when the attempt fails; a failure of the
sink itself (S3, not Kaggle) is raised as it is, neither retried nor wrapped (see
:class:`~snapcdc.extract.kaggle.retry.CallerError`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from snapcdc.extract.kaggle.client import build_api
from snapcdc.extract.kaggle.errors import CREDENTIALS_HINT, KaggleAuthError, KaggleError
from snapcdc.extract.kaggle.guard import Deadline, Guard
from snapcdc.extract.kaggle.retry import Caller, CallerError, Retryable, RetryPolicy
from snapcdc.extract.kaggle.secret import KaggleCredentials

logger = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://api.kaggle.com"
CHUNK_BYTES = 1024 * 1024  # as the client's own writer

T = TypeVar("T")


@dataclass(frozen=True)
class DatasetVersion:
    number: int
    last_updated: str  # ISO 8601 UTC, e.g. 2025-01-15T10:20:30Z


@dataclass(frozen=True)
class KaggleOptions:
    """Where and how patiently to talk to Kaggle.

    ``endpoint``: another server than api.kaggle.com (the fake Kaggle of tests and the demo).
    ``deadline``: when all Kaggle work must be over (None: no limit but the attempts and timeouts).
    """

    endpoint: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 120.0
    deadline: Deadline | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)


class DownloadSink(Protocol):
    """Where :meth:`KaggleSource.download_to` writes one attempt's bytes."""

    def write(self, data: bytes) -> object: ...

    def complete(self) -> object: ...

    def abort(self) -> None: ...


def split_dataset_ref(dataset: str) -> tuple[str, str]:
    owner, _, slug = dataset.partition("/")
    if not owner or not slug or "/" in slug:
        raise ValueError(f"Kaggle dataset must be 'owner/slug', got {dataset!r}")
    return owner, slug


class KaggleSource:
    """Version checks and downloads of one Kaggle account, with bounded retries."""

    def __init__(self, credentials: KaggleCredentials, work_dir: Path, options: KaggleOptions | None = None) -> None:
        if not credentials.username or not credentials.key:
            named = (("username", credentials.username), ("key", credentials.key))
            missing = " and ".join(name for name, value in named if not value)
            raise KaggleAuthError(f"Kaggle {missing} is empty: {CREDENTIALS_HINT}")
        self._credentials = credentials
        self._config_dir = Path(work_dir) / "kaggle-config"
        self._options = options or KaggleOptions()
        self._guard = Guard(self._options.connect_timeout, self._options.read_timeout, self._options.deadline)
        self._caller = Caller(credentials.username, self.endpoint)
        self._api_instance: Any = None

    @property
    def endpoint(self) -> str:
        return self._options.endpoint or DEFAULT_ENDPOINT

    def _api(self) -> Any:
        if self._api_instance is None:
            self._api_instance = build_api(self._credentials, self._config_dir, self._options.endpoint, self._guard)
        return self._api_instance

    def _run(self, label: str, attempt: Callable[[], T]) -> T:
        return self._options.retry.run(label, attempt, self._guard, self._caller)

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

        return self._run(f"GetDataset {dataset}", attempt)

    def download(self, dataset: str, dest_dir: Path, version: int | None = None) -> Path:
        """Download the dataset's zip (a given version, or the current one) to ``dest_dir``."""
        owner, slug = split_dataset_ref(dataset)
        dest_dir = Path(dest_dir)
        dest_dir.mkdir(parents=True, exist_ok=True)
        outfile = dest_dir / f"{slug}.zip"
        label = f"DownloadDataset {dataset}" + (f" version {version}" if version else "")

        def attempt() -> Path:
            api = self._api()
            request = _download_request(owner, slug, version)
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
                raise Retryable("the download produced no file")
            return outfile

        try:
            return self._run(label, attempt)
        except BaseException:
            outfile.unlink(missing_ok=True)
            outfile.with_name(outfile.name + ".kaggle-partial").unlink(missing_ok=True)  # the client's resume marker
            raise

    def download_to(self, dataset: str, open_sink: Callable[[], DownloadSink], version: int | None = None) -> int:
        """Stream the dataset's zip (a given version, or the current one) into a new sink per attempt.

        Returns the bytes written; the last sink is completed, every earlier one aborted.
        """
        owner, slug = split_dataset_ref(dataset)
        label = f"DownloadDataset {dataset}" + (f" version {version}" if version else "")

        def attempt() -> int:
            api = self._api()
            request = _download_request(owner, slug, version)
            with api.build_kaggle_client() as kaggle:
                response = kaggle.datasets.dataset_api_client.download_dataset(request)
                try:
                    return _stream_body(response, _sink(open_sink))
                finally:
                    response.close()

        return self._run(label, attempt)


def _sink(open_sink: Callable[[], DownloadSink]) -> DownloadSink:
    try:
        return open_sink()
    except Exception as error:
        raise CallerError(error) from error


def _stream_body(response: Any, sink: DownloadSink) -> int:
    """The body into ``sink``, checked against ``Content-Length`` as ``KaggleApi.download_file`` does."""
    content_length = response.headers.get("Content-Length")
    expected = int(content_length) if content_length else None
    size = 0
    try:
        for data in response.iter_content(CHUNK_BYTES):
            if not data:
                break
            size += len(data)
            try:
                sink.write(data)
            except Exception as error:
                raise CallerError(error) from error
        if expected is not None and size != expected:
            # The client's message: the retry policy classifies it as a short download.
            raise ValueError(f"Downloaded file size ({size}) does not match expected size ({expected})")
        try:
            sink.complete()
        except Exception as error:
            raise CallerError(error) from error
    except BaseException:
        try:
            sink.abort()
        except Exception:  # the failure that got us here matters more; a lifecycle rule drops orphan parts
            logger.exception("could not abort the sink of a failed download")
        raise
    return size


def _iso_utc(moment: datetime | None) -> str:
    if moment is None:
        return ""
    if moment.tzinfo is None:  # kagglesdk parses "...Z" into a naive datetime
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _download_request(owner: str, slug: str, version: int | None) -> Any:
    """The client's DownloadDataset request (kagglesdk is imported only once the environment is set)."""
    from kagglesdk.datasets.types.dataset_api_service import ApiDownloadDatasetRequest

    request = ApiDownloadDatasetRequest()
    request.owner_slug = owner
    request.dataset_slug = slug
    request.dataset_version_number = version
    return request
