"""A fake Kaggle API on 127.0.0.1 for the real ``kaggle`` client (tests, fault injection, the demo).

It speaks the protocol of kaggle 2.2.4 / kagglesdk 0.1.37: every call is ``POST
<endpoint>/v1/<Service>/<Method>`` (``/api/v1/...`` is accepted too, as the client uses it for
non-production environments) with a camelCase JSON body, HTTP Basic auth (username + API key).
Downloads answer like Kaggle: a 302 to a blob URL (followed by the client as a GET) or, with
``redirect_downloads=False``, the zip bytes directly; both carry ``Content-Length`` and an RFC 1123
``Last-Modified``, which the client parses.

Implemented methods (``datasets.DatasetApiService/``): ``GetDataset`` (the cheap version check),
``DownloadDataset``, ``ListDatasetFiles``, ``GetDatasetStatus``, ``GetDatasetMetadata``. Anything
else answers 404 with a JSON error, and is recorded, so a test sees what the client asked for.

Usage::

    with FakeKaggle() as fake:                    # username "snapcdc-test", key "fake-key"
        fake.publish("owner/slug", {"clientes.csv": b"idCliente;qtdePontos\\n1;10\\n"})
        source = KaggleSource(KaggleCredentials(fake.username, fake.key), work_dir, KaggleOptions(fake.endpoint))

Bounded by design: handlers time out idle sockets, injected delays end when the server stops,
and ``stop()`` returns within a few seconds.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import secrets
import threading
import zipfile
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import urlsplit

DATASET_SERVICE = "datasets.DatasetApiService"
BLOB_RPC = "blob"  # the name recorded for the GET that follows a download redirect
_MAX_BODY = 1024 * 1024
_MAX_DELAY_SECONDS = 120.0
# A fixed timestamp for zip entries: the same files give the same zip bytes on every publish.
_ZIP_DATE = (2025, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class RecordedRequest:
    """One request the fake answered (for asserting retries and call sequences)."""

    method: str
    path: str
    rpc: str | None  # e.g. "GetDataset", "DownloadDataset", "blob"; None if the path is unknown
    status: int
    username: str | None
    body: dict[str, Any]


@dataclass(frozen=True)
class _Version:
    number: int
    zip_bytes: bytes
    created: datetime
    files: tuple[tuple[str, int], ...]  # (name, uncompressed size)
    etag: str


@dataclass
class _Fault:
    kind: Literal["fail", "delay", "truncate", "drip"]
    remaining: int
    rpc: str | None
    status: int = 0
    seconds: float = 0.0
    chunk_bytes: int = 0


@dataclass
class _Dataset:
    owner: str
    slug: str
    id: int
    versions: list[_Version] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.owner}/{self.slug}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_zip(files: dict[str, bytes]) -> bytes:
    """A deflated zip of ``files`` (name -> bytes), deterministic for the same input."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def _zip_listing(zip_bytes: bytes) -> tuple[tuple[str, int], ...]:
    # Hostile archives may not even parse; the listing is informational only.
    try:
        with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
            return tuple((i.filename, i.file_size) for i in archive.infolist() if not i.is_dir())
    except (zipfile.BadZipFile, ValueError, OSError):
        return ()


class FakeKaggle:
    """A fake Kaggle API server (a context manager; ``start()`` returns the endpoint URL)."""

    def __init__(
        self,
        username: str = "snapcdc-test",
        key: str = "fake-key",
        *,
        redirect_downloads: bool = True,
        socket_timeout: float = 10.0,
    ) -> None:
        self.username = username
        self.key = key
        self.redirect_downloads = redirect_downloads
        self._socket_timeout = socket_timeout
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._datasets: dict[str, _Dataset] = {}
        self._blob_versions: dict[str, _Version] = {}
        self._faults: deque[_Fault] = deque()
        self._requests: list[RecordedRequest] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> str:
        if self._server is not None:
            return self.endpoint
        self._stopping.clear()
        handler = type("_BoundHandler", (_Handler,), {"fake": self, "timeout": self._socket_timeout})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-kaggle", daemon=True
        )
        self._thread.start()
        return self.endpoint

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()  # ends injected delays now
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeKaggle:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        """Base URL to give the client (``KaggleOptions(endpoint=...)``), e.g. http://127.0.0.1:5123."""
        if self._server is None:
            raise RuntimeError("FakeKaggle is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- datasets --------------------------------------------------------------------------
    def publish(self, dataset_ref: str, files: dict[str, bytes], *, published_at: datetime | None = None) -> int:
        """Publish a new version made of ``files``; returns its version number (1, 2, ...)."""
        return self.publish_zip(dataset_ref, build_zip(files), published_at=published_at)

    def publish_zip(self, dataset_ref: str, zip_bytes: bytes, *, published_at: datetime | None = None) -> int:
        """Publish raw zip bytes as a new version (hostile or corrupt archives included)."""
        owner, _, slug = dataset_ref.partition("/")
        if not owner or not slug or "/" in slug:
            raise ValueError(f"dataset ref must be owner/slug, got {dataset_ref!r}")
        with self._lock:
            dataset = self._datasets.get(dataset_ref)
            if dataset is None:
                dataset = _Dataset(owner, slug, id=len(self._datasets) + 1)
                self._datasets[dataset_ref] = dataset
            number = len(dataset.versions) + 1
            created = published_at or datetime.now(UTC).replace(microsecond=0)
            if dataset.versions and created <= dataset.versions[-1].created:
                created = dataset.versions[-1].created + timedelta(seconds=1)
            version = _Version(
                number=number,
                zip_bytes=zip_bytes,
                created=created.astimezone(UTC),
                files=_zip_listing(zip_bytes),
                etag=f'"{slug}-v{number}-{secrets.token_hex(4)}"',
            )
            dataset.versions.append(version)
        return number

    def current_version(self, dataset_ref: str) -> int:
        with self._lock:
            return len(self._datasets[dataset_ref].versions)

    # -- fault injection -------------------------------------------------------------------
    def fail_next(self, status: int, times: int = 1, *, rpc: str | None = None) -> None:
        """Answer the next ``times`` requests (of ``rpc`` if given) with HTTP ``status``."""
        self._add_fault(_Fault("fail", times, rpc, status=status))

    def delay_next(self, seconds: float, times: int = 1, *, rpc: str | None = None) -> None:
        """Hold the next ``times`` requests ``seconds`` before answering (client timeouts)."""
        self._add_fault(_Fault("delay", times, rpc, seconds=min(seconds, _MAX_DELAY_SECONDS)))

    def truncate_next(self, times: int = 1) -> None:
        """Send only half of the next ``times`` zip bodies, with the full ``Content-Length``."""
        self._add_fault(_Fault("truncate", times, None))

    def drip_next(self, interval: float, times: int = 1, *, chunk_bytes: int = 1) -> None:
        """Send the next ``times`` zip bodies ``chunk_bytes`` at a time, one chunk every ``interval``
        seconds: a slow-drip server, whose every read gets data before a read timeout. The drip
        stops when the client hangs up or the server stops."""
        if chunk_bytes < 1:
            raise ValueError("chunk_bytes must be at least 1")
        self._add_fault(_Fault("drip", times, None, seconds=min(interval, _MAX_DELAY_SECONDS), chunk_bytes=chunk_bytes))

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def _add_fault(self, fault: _Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("times must be at least 1")
        with self._lock:
            self._faults.append(fault)

    def _take_fault(self, kinds: tuple[str, ...], rpc: str | None) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.kind in kinds and (fault.rpc is None or fault.rpc == rpc):
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    # -- request log -----------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def request_count(self, rpc: str | None = None) -> int:
        return sum(1 for r in self.requests if rpc is None or r.rpc == rpc)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    # -- answers (called from handler threads) ---------------------------------------------
    def _wait(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def _find(self, body: dict[str, Any]) -> tuple[_Dataset, _Version] | str:
        ref = f"{body.get('ownerSlug', '')}/{body.get('datasetSlug', '')}"
        with self._lock:
            dataset = self._datasets.get(ref)
            if dataset is None or not dataset.versions:
                return f"dataset {ref} not found"
            wanted = body.get("datasetVersionNumber")
            if wanted is None:
                return dataset, dataset.versions[-1]
            if not isinstance(wanted, int) or not 1 <= wanted <= len(dataset.versions):
                return f"dataset {ref} has no version {wanted}"
            return dataset, dataset.versions[wanted - 1]

    def _register_blob(self, version: _Version) -> str:
        token = secrets.token_urlsafe(16)
        with self._lock:
            self._blob_versions[token] = version
        return token

    def _blob(self, token: str) -> _Version | None:
        with self._lock:
            return self._blob_versions.get(token)


def _dataset_json(dataset: _Dataset, version: _Version) -> dict[str, Any]:
    files = [
        {"ref": name, "name": name, "totalBytes": size, "creationDate": _iso(version.created)}
        for name, size in version.files
    ]
    return {
        "id": dataset.id,
        "ref": dataset.ref,
        "title": dataset.slug,
        "url": f"https://www.kaggle.com/datasets/{dataset.ref}",
        "ownerRef": dataset.owner,
        "licenseName": "CC0-1.0",
        "isPrivate": False,
        "totalBytes": len(version.zip_bytes),
        "currentVersionNumber": dataset.versions[-1].number,
        "lastUpdated": _iso(dataset.versions[-1].created),
        "versions": [
            {"versionNumber": v.number, "creationDate": _iso(v.created), "status": "ready"}
            for v in reversed(dataset.versions)
        ],
        "files": files,
    }


class _Handler(BaseHTTPRequestHandler):
    fake: FakeKaggle  # set on the bound subclass
    server_version = "FakeKaggle/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests read the request log
        return

    # -- plumbing --------------------------------------------------------------------------
    def _send(
        self,
        status: int,
        body: bytes,
        headers: dict[str, str] | None = None,
        *,
        truncate: bool = False,
        drip: _Fault | None = None,
    ) -> None:
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if drip is not None:
                self._drip(body, drip)
            else:
                # A truncated answer promises len(body) bytes and sends half, then closes.
                self.wfile.write(body[: len(body) // 2] if truncate else body)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the client gave up (e.g. its read timeout): nothing left to answer
        self.close_connection = True

    def _drip(self, body: bytes, fault: _Fault) -> None:
        self.wfile.flush()
        for start in range(0, len(body), fault.chunk_bytes):
            if start:
                self.fake._wait(fault.seconds)
            if self.fake._stopping.is_set():
                return
            self.wfile.write(body[start : start + fault.chunk_bytes])
            self.wfile.flush()

    def _json(self, status: int, document: dict[str, Any]) -> None:
        self._send(status, json.dumps(document).encode(), {"Content-Type": "application/json"})

    def _error(self, status: int, message: str) -> None:
        # kagglesdk raises HTTPError(message) for a JSON body with code >= 400.
        self._json(status, {"code": status, "message": message})

    def _username(self) -> str | None:
        header = self.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return None
        try:
            decoded = base64.b64decode(header[6:], validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user, _, key = decoded.partition(":")
        return user if (user, key) == (self.fake.username, self.fake.key) else None

    def _read_body(self) -> dict[str, Any] | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            return None
        if length > _MAX_BODY:
            return None
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            return None
        return body if isinstance(body, dict) else None

    def _inject(self, rpc: str | None, body: dict[str, Any]) -> bool:
        """Apply a queued delay or failure; True if the request has been answered."""
        fault = self.fake._take_fault(("fail", "delay"), rpc)
        if fault is None:
            return False
        if fault.kind == "delay":
            self.fake._wait(fault.seconds)
            return False
        self._record(rpc, -1, None, body)  # -1: an injected failure; recorded before the client sees it
        headers = {"Content-Type": "application/json"}
        if fault.status == 429:
            headers["Retry-After"] = "0"
        answer = json.dumps({"code": fault.status, "message": f"injected HTTP {fault.status}"}).encode()
        self._send(fault.status, answer, headers)
        return True

    def _record(self, rpc: str | None, status: int, username: str | None, body: dict[str, Any]) -> None:
        self.fake._record(RecordedRequest(self.command, self.path, rpc, status, username, body))

    # -- routes ----------------------------------------------------------------------------
    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if not path.startswith("/_blobs/"):
            self._record(None, 404, None, {})
            self._error(404, f"no route for GET {path}")
            return
        if self._inject(BLOB_RPC, {}):
            return
        version = self.fake._blob(path.removeprefix("/_blobs/"))
        if version is None:
            self._record(BLOB_RPC, 404, None, {})
            self._error(404, "blob not found or expired")
            return
        self._record(BLOB_RPC, 200, None, {})
        self._send_zip(version)

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "v1"]:
            parts = parts[2:]
        elif parts[:1] == ["v1"]:
            parts = parts[1:]
        else:
            parts = []
        rpc = parts[1] if len(parts) == 2 else None
        body = self._read_body()
        if rpc is None or body is None:
            self._record(rpc, 400 if body is None else 404, None, body or {})
            self._error(400 if body is None else 404, f"no route for POST {path}")
            return
        if self._inject(rpc, body):
            return
        username = self._username()
        if username is None:
            self._record(rpc, 401, None, body)
            self._error(401, "Unauthenticated: invalid username or API key")
            return
        if parts[0] != DATASET_SERVICE or rpc not in _ROUTES:
            self._record(rpc, 404, username, body)
            self._error(404, f"{parts[0]}/{rpc} is not implemented by FakeKaggle")
            return
        found = self.fake._find(body)
        if isinstance(found, str):
            self._record(rpc, 404, username, body)
            self._error(404, found)
            return
        self._record(rpc, 200, username, body)
        _ROUTES[rpc](self, found[0], found[1], body)

    def _get_dataset(self, dataset: _Dataset, version: _Version, body: dict[str, Any]) -> None:
        self._json(200, _dataset_json(dataset, version))

    def _list_files(self, dataset: _Dataset, version: _Version, body: dict[str, Any]) -> None:
        files = _dataset_json(dataset, version)["files"]
        self._json(200, {"datasetFiles": files, "nextPageToken": ""})

    def _status(self, dataset: _Dataset, version: _Version, body: dict[str, Any]) -> None:
        self._json(200, {"status": "READY"})

    def _metadata(self, dataset: _Dataset, version: _Version, body: dict[str, Any]) -> None:
        info = {"datasetId": dataset.id, "datasetSlug": dataset.slug, "ownerUser": dataset.owner}
        self._json(200, {"info": {**info, "title": dataset.slug, "licenses": [{"name": "CC0-1.0"}]}})

    def _download(self, dataset: _Dataset, version: _Version, body: dict[str, Any]) -> None:
        if body.get("fileName"):
            self._error(400, "single-file downloads are not implemented by FakeKaggle")
            return
        if self.fake.redirect_downloads:
            token = self.fake._register_blob(version)
            self._send(302, b"", {"Location": f"/_blobs/{token}"})
            return
        self._send_zip(version)

    def _send_zip(self, version: _Version) -> None:
        truncate = self.fake._take_fault(("truncate",), None) is not None
        drip = self.fake._take_fault(("drip",), None)
        headers = {
            "Content-Type": "application/zip",
            "Last-Modified": format_datetime(version.created, usegmt=True),
            "ETag": version.etag,
            "Content-Disposition": f'attachment; filename="v{version.number}.zip"',
        }
        self._send(200, version.zip_bytes, headers, truncate=truncate, drip=drip)


_ROUTES = {
    "GetDataset": _Handler._get_dataset,
    "ListDatasetFiles": _Handler._list_files,
    "GetDatasetStatus": _Handler._status,
    "GetDatasetMetadata": _Handler._metadata,
    "DownloadDataset": _Handler._download,
}

__all__ = ["BLOB_RPC", "FakeKaggle", "RecordedRequest", "build_zip"]
