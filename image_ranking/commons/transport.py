"""HTTP for Commons with a real wall-clock deadline per request, and exact origin checks.

Why: requests' read timeout bounds each socket read, not the request, so a body dribbled at
256 B/s kept a "20 s" download open for 258 s. Here every socket a request opens (or reuses)
is attached to the current `Deadline`; when it expires a timer thread shuts that socket
down, which ends a blocked connect, header or body read at once. Deadlines are capped by the
POI's time budget (`budget.cap`), so no request outlives it either.

Use `new_session()` (or `watch(session)`) and wrap each request in `with Deadline(s) as d:`;
after an error (or a body that ended early), `d.expired` tells a timeout from a fault.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from contextvars import ContextVar
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from image_ranking.commons import budget

DEFAULT_PORTS = {"http": 80, "https": 443}
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

_current: ContextVar[Deadline | None] = ContextVar("commons_request_deadline", default=None)


def origin_of(url: str) -> str:
    """scheme://host:port with the default port made explicit, for exact comparison."""
    parts = urlsplit(url)
    scheme = (parts.scheme or "").lower()
    try:
        port = parts.port or DEFAULT_PORTS.get(scheme)
    except ValueError:
        return ""
    return f"{scheme}://{(parts.hostname or '').lower()}:{port}"


class Deadline:
    """A wall-clock limit for one request (connect, redirects, headers and body).

    `seconds` is shortened to what the POI's time budget has left; `by_budget` says whether
    the budget, not the request's own timeout, set the limit (for the error message).
    """

    def __init__(self, seconds: float) -> None:
        capped = budget.cap(seconds)
        self.seconds = max(0.0, capped)
        self.by_budget = capped < seconds
        self.ends_at = time.monotonic() + self.seconds
        self.expired = self.seconds <= 0
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._token: Any = None

    def left(self) -> float:
        return max(0.0, self.ends_at - time.monotonic())

    @property
    def passed(self) -> bool:
        """Expired, or due now (a socket timeout may fire a moment before the timer)."""
        return self.expired or self.left() <= 0.05

    def describe(self) -> str:
        if self.by_budget:
            return f"the POI's time budget ran out ({self.seconds:.1f} s left for this request)"
        return f"no complete answer within {self.seconds:.1f} s"

    def attach(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            if sock not in self._sockets:
                self._sockets.append(sock)
            expired = self.expired
        if expired:
            _shut(sock)

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets = list(self._sockets)
        for sock in sockets:
            _shut(sock)

    def __enter__(self) -> Deadline:
        self._token = _current.set(self)
        if not self.expired:
            self._timer = threading.Timer(self.left(), self._expire)
            self._timer.daemon = True
            self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._timer is not None:
            self._timer.cancel()
        _current.reset(self._token)


def _shut(sock: socket.socket) -> None:
    """Wake any thread blocked on `sock` (close() alone would not)."""
    with contextlib.suppress(OSError):  # already closed or never connected
        sock.shutdown(socket.SHUT_RDWR)


def _attach_current(sock: socket.socket | None) -> None:
    deadline = _current.get()
    if deadline is not None:
        deadline.attach(sock)


class _Watched:
    """Mixin for urllib3 connections: new and reused sockets join the current Deadline."""

    sock: socket.socket | None

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        _attach_current(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _attach_current(self.sock)
        super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Watched, HTTPConnection):
    pass


class _HTTPSConnection(_Watched, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class WatchedAdapter(HTTPAdapter):
    """requests' adapter whose connections honour the current Deadline (proxies included)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy: str, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **kwargs)
        manager.pool_classes_by_scheme = dict(_POOLS)
        return manager


def watch(session: requests.Session) -> requests.Session:
    """Mount the deadline-aware adapter on `session` for http and https."""
    session.mount("http://", WatchedAdapter())
    session.mount("https://", WatchedAdapter())
    return session


def new_session() -> requests.Session:
    return watch(requests.Session())


def socket_timeouts(deadline: Deadline, connect: float = 5.0) -> tuple[float, float]:
    """requests' (connect, read) timeouts, never longer than the time left."""
    left = max(0.01, deadline.left())
    return min(connect, left), left
