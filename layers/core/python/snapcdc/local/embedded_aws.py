"""An embedded AWS (moto server) on 127.0.0.1, spoken to over real HTTP by boto3 and awswrangler.

Used by ``snapcdc demo`` and the end-to-end tests. While it runs, ``AWS_ENDPOINT_URL`` points every
boto3 client of this process at it, with throwaway credentials, so the real handlers run unchanged.
"""

from __future__ import annotations

import logging
import os
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
    from moto.server import ThreadedMotoServer  # dev-only dependency: imported on use

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    # moto keeps its state per process, not per server: start every embedded AWS empty.
    reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")  # noqa: S310 - loopback http
    urllib.request.urlopen(reset, timeout=10).close()  # noqa: S310 - http on loopback, built above
    try:
        with patched_environ({**_ENV, "AWS_ENDPOINT_URL": endpoint}):
            yield EmbeddedAws(endpoint)
    finally:
        server.stop()
