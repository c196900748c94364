"""The Redis client: hq-sweep's connection policy, and the boundary where redis-py's errors
become the project's own (`errors.RedisUnavailable`, `RedisRefused`, `TransportError`).

Every command sent through a `Client` (directly, in a pipeline, or by a Lua script) raises
only `TransportError`s, so nothing past the queue imports `redis.exceptions`. rq gets a plain
redis-py client on the same connection pool (`for_rq`): rq catches redis-py's own errors.
Both tell the pool whether the server answered, so a client given `reread` follows a server
that moved (`repoint`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.client import Pipeline
from redis.retry import Retry

from hq_sweep.errors import RedisRefused, RedisUnavailable, TransportError
from hq_sweep.queue.redaction import redact
from hq_sweep.queue.repoint import RIDE_OUT_S, MovablePool

__all__ = ["Client", "ScriptMissing", "connect", "for_rq", "redact", "text", "translate"]

_T = TypeVar("_T")
_UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
# What rq's own calls raise when the server cannot be reached (rq gets redis-py's errors:
# `for_rq`); `translate` makes one of them the project's RedisUnavailable.
UNREACHABLE_ERRORS: tuple[type[redis.exceptions.RedisError], ...] = _UNREACHABLE
_PERMANENT = (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError)


class ScriptMissing(TransportError):
    """The server does not hold a Lua script yet (NOSCRIPT): send its text."""


def translate(exc: redis.exceptions.RedisError) -> TransportError:
    """The project's error for a redis-py one (refusals first: redis-py files a wrong
    password under ConnectionError)."""
    if isinstance(exc, _PERMANENT):
        return RedisRefused(f"the Redis server refused the password in the URL ({exc})")
    if isinstance(exc, redis.exceptions.NoPermissionError):
        return RedisRefused(f"the Redis user may not run this command ({exc})")
    if isinstance(exc, redis.exceptions.NoScriptError):
        return ScriptMissing(str(exc))
    if isinstance(exc, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError):
        return RedisUnavailable(f"cannot reach Redis: {redact(str(exc))}")
    return TransportError(f"Redis error: {redact(str(exc))}")


def text(raw: bytes | str | None) -> str | None:
    """A reply as text (replies are bytes: the client does not decode)."""
    return raw.decode() if isinstance(raw, bytes) else raw


def _note(pool: Any, error: BaseException | None) -> bool:
    """Tell a MovablePool whether the server answered; True when that made the pool follow
    the server to where its file now says it is."""
    if not isinstance(pool, MovablePool):
        return False
    if isinstance(error, _PERMANENT):
        return pool.refused()
    if isinstance(error, _UNREACHABLE):
        return pool.unreachable()
    pool.reachable()
    return False


def _translate_noted(pool: Any, exc: redis.exceptions.RedisError) -> TransportError:
    """`translate(exc)`, after telling the pool; a refusal that made it follow the server is
    an outage (callers retry those), not a wrong password."""
    if _note(pool, exc) and isinstance(exc, _PERMANENT):
        return RedisUnavailable("the server's secret changed; reconnecting")
    return translate(exc)


class _Pipeline(Pipeline):
    def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            replies = super().execute(raise_on_error)
        except redis.exceptions.RedisError as exc:
            raise _translate_noted(self.connection_pool, exc) from exc
        _note(self.connection_pool, None)
        return replies


class Client(redis.Redis):
    """redis-py's client, raising the project's errors instead of redis-py's."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            reply = super().execute_command(*args, **options)
        except redis.exceptions.RedisError as exc:
            raise _translate_noted(self.connection_pool, exc) from exc
        _note(self.connection_pool, None)
        return reply

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        return _Pipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


class _RqClient(redis.Redis):
    """redis-py's own client (rq catches redis-py's errors), noting outages like Client."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            reply = super().execute_command(*args, **options)
        except redis.exceptions.RedisError as exc:
            _note(self.connection_pool, exc)
            raise
        _note(self.connection_pool, None)
        return reply


def for_rq(client: redis.Redis) -> redis.Redis:
    """A plain redis-py client sharing `client`'s connections, for rq (which expects
    redis-py's exceptions)."""
    return _RqClient(connection_pool=client.connection_pool)


class _TransientRetry(Retry):
    """Retry connection trouble, but not a refused password: redis-py files auth errors under
    ConnectionError, and retrying one only delays the message the user needs.

    On a pool that can follow its server (`pool` set), connection trouble is then ridden out
    for the pool's `outlast` window, here, under every command: rq's own calls (a job's
    bookkeeping, its pub/sub) have no retry of their own, and one that fails ends the worker.
    """

    pool: MovablePool | None = None

    def __deepcopy__(self, memo: dict[int, Any]) -> _TransientRetry:
        # redis-py deep-copies the policy into each connection: share the pool, not a copy.
        return copy.copy(self)

    def call_with_retry(
        self,
        do: Callable[[], _T],
        fail: Callable[[Exception], Any] | Callable[[Exception, int], Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> _T:
        def retryable(error: Exception) -> bool:
            if isinstance(error, _PERMANENT):
                return False
            return is_retryable(error) if is_retryable else True

        while True:
            try:
                return super().call_with_retry(do, fail, retryable, with_failure_count)
            except _UNREACHABLE as exc:
                if isinstance(exc, _PERMANENT) or self.pool is None or not self.pool.outlast():
                    raise


def connect(
    url: str, *, socket_timeout: float | None = 30.0, client_name: str | None = None,
    reread: Callable[[], str] | None = None, patience_s: float | None = None,
) -> Client:
    """A client for `url` with hq-sweep's connection policy.

    Bytes in and out (`decode_responses=False`: everything stored is JSON we decode
    ourselves). TCP keepalive and a periodic health check notice dead peers on long-idle
    worker connections; transient connection errors are retried a few times with
    exponential backoff. Callers issuing blocking commands longer than `socket_timeout`
    must raise it (or pass None). Retried writes may apply twice: state changes that must
    not are fenced by the queue's Lua scripts, not by this client. `reread`: where the URL
    came from, read again after an outage of `repoint.REREAD_AFTER_S` (None: never);
    `patience_s`: the caller's whole patience, which caps how long each command then waits
    out an outage (`repoint.RIDE_OUT_S`).
    """
    retry = _TransientRetry(
        ExponentialBackoff(cap=1.0, base=0.05),
        retries=3,
        supported_errors=(redis.exceptions.ConnectionError, redis.exceptions.TimeoutError),
    )
    # TCP keepalive has no meaning on (and is refused by) a unix-socket connection.
    tcp: dict[str, Any] = {} if url.lower().startswith("unix:") else {"socket_keepalive": True}
    pool = MovablePool.from_url(
        url,
        decode_responses=False,
        health_check_interval=15,
        socket_connect_timeout=5.0,
        socket_timeout=socket_timeout,
        retry=retry,
        client_name=client_name,
        **tcp,
    )
    pool.reread = reread
    if patience_s is not None:
        pool.ride_out_s = min(RIDE_OUT_S, patience_s)
    if reread is not None:
        retry.pool = pool  # before the first connection copies the policy
    client = Client(connection_pool=pool)
    client.auto_close_connection_pool = True  # as from_url's: close() closes the pool too
    return client
