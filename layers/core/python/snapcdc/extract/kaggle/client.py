"""The ``kaggle`` client (2.2.4, kagglesdk 0.1.37), imported late and patched for Lambda.

* ``import kaggle`` authenticates and reads its config dir at import time, and a read-only HOME
  breaks it: the environment (``KAGGLE_CONFIG_DIR`` under the work dir in /tmp, the credentials)
  is set first and kaggle is imported inside :func:`build_api`, never at module import.
* No credentials make ``authenticate()`` call ``exit(1)``; a ``SystemExit`` is not an
  ``Exception``, so it is turned into :class:`~snapcdc.extract.kaggle.errors.KaggleAuthError` here.
* kagglesdk sends without a timeout: every session gets the :class:`~snapcdc.extract.kaggle.guard.Guard`'s
  adapter (timeouts clipped to the deadline, sockets the watchdog can cut).
* ``endpoint`` points the client at another server (the fake Kaggle of tests and the demo) with the
  production URL scheme (``<endpoint>/v1/<Service>/<Method>``): the kagglesdk endpoint table is
  global and has only fixed hosts, so this one client's endpoint is set instead.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from snapcdc.extract.kaggle.errors import CREDENTIALS_HINT, KaggleAuthError, KaggleError
from snapcdc.extract.kaggle.guard import Guard
from snapcdc.extract.kaggle.secret import KaggleCredentials


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


def build_api(credentials: KaggleCredentials, config_dir: Path, endpoint: str | None, guard: Guard) -> Any:
    """An authenticated ``KaggleApi`` whose HTTP goes through ``guard`` (to ``endpoint``, if given)."""
    _prepare_environment(credentials.username, credentials.key, config_dir)
    from kaggle.api.kaggle_api_extended import KaggleApi  # env must be set first
    from kagglesdk.kaggle_env import KaggleEnv

    class _SnapcdcKaggleApi(KaggleApi):  # type: ignore[misc]
        def build_kaggle_client(self) -> Any:
            if endpoint is None:
                client = super().build_kaggle_client()
            else:
                # TEST in the endpoint table is localhost:7777 and ignored by KaggleApi.
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
            # A stalled server would otherwise hang the Lambda until its own timeout. The session is
            # created lazily; create it now to mount the adapter.
            http = client.http_client()
            http._init_session()
            adapter = guard.adapter()
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
        raise KaggleAuthError(f"the kaggle client found no usable credentials: {CREDENTIALS_HINT}") from None
    return api
