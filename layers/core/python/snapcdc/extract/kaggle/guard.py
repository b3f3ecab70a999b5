"""The deadline of the Kaggle work, and the guard that enforces it on the client's sockets.

:class:`Deadline` is pure (a clock and a number). In Lambda it is the invocation's remaining time
minus a margin kept back for what comes after Kaggle (extracting the zip, the S3 uploads, the
manifest), so a stalled Kaggle makes the function fail clearly, with its metric, instead of being
killed by the Lambda timeout.

A read timeout bounds each socket read, not a whole call: a server that drips a byte now and then
never times out. :class:`Guard` gives every request its connect and read timeouts (requests has no
session-wide default, and kagglesdk sends without one), clipped to the time left, and a watchdog
(a timer firing at the deadline) shuts the sockets of a call still running then, whatever phase
it is in (connecting, a TLS handshake, waiting for an answer, streaming a body).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import urllib3.connection
import urllib3.connectionpool
from requests.adapters import HTTPAdapter

from snapcdc.errors import ControlSignal
from snapcdc.extract.kaggle.errors import TimeBudgetError

MARGIN_SETTING = "UPLOAD_MARGIN_SECONDS"


@dataclass(frozen=True)
class Deadline:
    at: float  # a reading of ``clock``
    description: str  # how it was set, for error messages
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    @classmethod
    def after(cls, seconds: float, description: str = "", clock: Callable[[], float] = time.monotonic) -> Deadline:
        return cls(clock() + seconds, description or f"{seconds:g} s from its start", clock)

    @classmethod
    def for_lambda(
        cls, remaining_ms: int, margin_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> Deadline:
        """The invocation's remaining time (``context.get_remaining_time_in_millis()``) minus the margin.

        A margin that leaves no time at all is a :class:`TimeBudgetError` (a retry cannot help).
        """
        remaining = remaining_ms / 1000
        budget = remaining - margin_seconds
        if budget <= 0:
            raise TimeBudgetError(
                f"the extract has {remaining:.0f} s left in this invocation, not more than "
                f"{MARGIN_SETTING}={margin_seconds:g} kept back for the S3 uploads: no time is left for Kaggle; "
                f"raise the function timeout (extract_timeout_minutes) or lower {MARGIN_SETTING}"
            )
        return cls.after(
            budget,
            f"{budget:.0f} s for Kaggle: the {remaining:.0f} s left in the Lambda invocation minus "
            f"{MARGIN_SETTING}={margin_seconds:g} kept for the S3 uploads",
            clock,
        )

    def remaining(self) -> float:
        """Seconds until the deadline (negative once it has passed)."""
        return self.at - self.clock()


class DeadlineReached(ControlSignal):
    """Internal: a connection was about to open after the deadline (classified by the retry policy)."""


class Guard:
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
                raise DeadlineReached("the deadline passed before the connection was made")
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

    def adapter(self) -> HTTPAdapter:
        """A requests adapter to mount on the client's session: its requests are guarded."""
        return _GuardedAdapter(self)

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


def _guarded_pool_classes(guard: Guard) -> dict[str, type[urllib3.connectionpool.HTTPConnectionPool]]:
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

    def __init__(self, guard: Guard) -> None:
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
