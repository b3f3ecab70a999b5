"""An embedded AWS (moto server) on 127.0.0.1, spoken to over real HTTP by boto3.

Used by ``snapcdc demo`` and the end-to-end tests. While it runs, ``AWS_ENDPOINT_URL`` points every
boto3 client of this process at it, with throwaway credentials, so the real handlers run unchanged.
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import boto3

_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


@dataclass(frozen=True)
class EmbeddedAws:
    endpoint: str

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=_ENV["AWS_DEFAULT_REGION"])


@contextmanager
def patched_environ(values: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextmanager
def embedded_aws() -> Iterator[EmbeddedAws]:
    """Start a moto server on a free loopback port; stop it on exit."""
    # moto's own server (what ThreadedMotoServer runs), served with a short shutdown poll:
    # ThreadedMotoServer keeps werkzeug's 0.5 s poll, which made every stop take half a second.
    from moto.moto_server.werkzeug_app import (  # dev-only dependency: imported on use
        DomainDispatcherApplication,
        MotoRequestHandler,
        create_backend_app,
    )
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    app = DomainDispatcherApplication(create_backend_app)
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="embedded-aws", daemon=True
    )
    thread.start()
    host, port = server.server_address[:2]
    endpoint = f"http://{host!s}:{port}"
    try:
        # moto keeps its state per process, not per server: start every embedded AWS empty.
        reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")  # noqa: S310 - loopback http
        urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310 - http on loopback, built above
        with patched_environ({**_ENV, "AWS_ENDPOINT_URL": endpoint}):
            yield EmbeddedAws(endpoint)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
