"""Following a Redis server that moved: a connection pool whose address can change.

A client that found its server through a file (a connection file, a credentials file) reads
that file again once it has failed to reach the server for `REREAD_AFTER_S`; when the file
names another address or secret, the pool takes it: every client on the pool (hq-sweep's own,
rq's) gets connections to the new place, and one line says so. This is what lets running
workers and controllers through a server that had to move (`server start --port`, a new
allocation's first node) without a restart. Reachability is noted by `client`, which sees
every command's outcome.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from redis.connection import Connection, ConnectionPool, parse_url

from hq_sweep.errors import HqSweepError
from hq_sweep.queue.redaction import redact

__all__ = ["REREAD_AFTER_S", "RIDE_OUT_S", "MovablePool"]

log = logging.getLogger("hq_sweep")
# Longer than a blip (a connection reset, a server's fork for a rewrite), short next to the
# 300 s that callers wait for a server (`retry.patiently`).
REREAD_AFTER_S = 5.0
# How long a command waits for a server that went away before it fails (`outlast`): long
# enough for a restart or a move, short enough that a server gone for good is reported.
RIDE_OUT_S = 60.0
_RIDE_OUT_PAUSE_S = 0.5
# What a URL decides about a connection; everything else (timeouts, retries) stays the pool's.
_ADDRESS_KEYS = ("host", "port", "path", "username", "password", "db")


class MovablePool(ConnectionPool):
    """redis-py's pool plus `reread`: where to learn the server's current URL (None: never)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._made: weakref.WeakSet[Any] = weakref.WeakSet()  # every connection it made
        super().__init__(*args, **kwargs)
        self.reread: Callable[[], str] | None = None
        self.ride_out_s = RIDE_OUT_S  # a caller with less patience shortens it (`connect`)
        self._move_lock = threading.Lock()
        self._down_since: float | None = None
        self._last_reread = 0.0

    def reachable(self) -> None:
        """A command got an answer: the outage, if any, is over."""
        if self._down_since is not None:
            self._down_since = None

    def unreachable(self) -> bool:
        """A command could not reach the server: after REREAD_AFTER_S of that, look again.
        True when the pool now points elsewhere."""
        if self.reread is None:
            return False
        now = time.monotonic()
        with self._move_lock:
            if self._down_since is None:
                self._down_since = now
                return False
            if now - self._down_since < REREAD_AFTER_S or now - self._last_reread < REREAD_AFTER_S:
                return False
            self._last_reread = now
            return self._follow(self.reread)

    def outlast(self) -> bool:
        """A command could not reach the server: whether to try it again, after a pause,
        rather than fail — while the outage is under `ride_out_s` old (the file is read again
        meanwhile, and a move followed: the command's own connection moves too)."""
        self.unreachable()
        down = self._down_since
        if self.reread is None or down is None or time.monotonic() - down >= self.ride_out_s:
            return False
        time.sleep(_RIDE_OUT_PAUSE_S)
        return True

    def refused(self) -> bool:
        """The server refused our secret: it may have been started with a new one, so look
        again at once (at most once a second). True when the pool now points elsewhere."""
        if self.reread is None:
            return False
        now = time.monotonic()
        with self._move_lock:
            if now - self._last_reread < 1.0:
                return False
            self._last_reread = now
            return self._follow(self.reread)

    def _follow(self, reread: Callable[[], str]) -> bool:
        try:
            url = reread()
            address = _address(url)
        except HqSweepError as exc:  # the file is being rewritten, or gone: try again later
            log.warning("the server is unreachable and its file does not read (%s)", exc)
            return False
        if address.pop("connection_class", Connection) is not self.connection_class:
            log.warning("the server's file names another kind of address (%s): restart this "
                        "process to follow it", redact(url))
            return False
        if all(self.connection_kwargs.get(k) == address.get(k) for k in _ADDRESS_KEYS):
            return False  # the same server: it is just not back yet
        self.repoint(address)
        log.warning("server moved to %s", redact(url))
        return True

    def make_connection(self) -> Any:
        connection = super().make_connection()
        self._made.add(connection)
        return connection

    def repoint(self, address: dict[str, Any]) -> None:
        """Take `address` (parse_url's keys) for every connection, now and from now on."""
        for key in _ADDRESS_KEYS:
            if key in address:
                self.connection_kwargs[key] = address[key]
            else:
                self.connection_kwargs.pop(key, None)
        if "host" in address:  # redis-py's maintenance notifications restore this one
            self.connection_kwargs["orig_host_address"] = address["host"]
        # Each connection holds its own address, and some are held for good outside the
        # pool (rq's pub/sub thread): move every one, then drop its socket; it reconnects
        # (and a pub/sub one resubscribes) at its next command.
        for connection in list(self._made):
            for key in _ADDRESS_KEYS:
                if hasattr(connection, key):
                    setattr(connection, key, address.get(key))
            if "host" in address and hasattr(connection, "orig_host_address"):
                connection.orig_host_address = address["host"]
            connection.disconnect()


def _address(url: str) -> dict[str, Any]:
    try:
        return dict(parse_url(url))
    except ValueError as exc:
        raise HqSweepError(f"not a Redis URL: {redact(url)}") from exc
