"""The Redis client: hq-sweep's connection policy, and the boundary where redis-py's errors
become the project's own (`errors.RedisUnavailable`, `RedisRefused`, `TransportError`).

Every command sent through a `Client` (directly, in a pipeline, or by a Lua script) raises
only `TransportError`s, so nothing past the queue imports `redis.exceptions`. rq gets a plain
redis-py client on the same connection pool (`for_rq`): rq catches redis-py's own errors.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import ExponentialBackoff
from redis.client import Pipeline
from redis.retry import Retry

from hq_sweep.errors import RedisRefused, RedisUnavailable, TransportError

_T = TypeVar("_T")
# `password=` in the query string is also honoured by redis-py, so it must be hidden too.
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)
_PERMANENT = (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError)


def redact(url: str) -> str:
    """Replace any password (user-info or `password=` query) in `url` with `***`."""
    text = _QUERY_PASSWORD.sub(r"\1***", url)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return text
    # User-info ends at the last '@' before the query: over-redacting an '@' in a socket
    # path is harmless, while stopping at the first '@' could leak half a password.
    head, qsep, tail = rest.partition("?")
    userinfo, at, hostpart = head.rpartition("@")
    if not at or not userinfo:
        return text
    user, colon, _secret = userinfo.partition(":")
    # A lone user-info token is ambiguous (`redis://SECRET@host`), so hide it as well.
    hidden = f"{user}:***" if colon else "***"
    return f"{scheme}://{hidden}@{hostpart}{qsep}{tail}"


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


class _Pipeline(Pipeline):
    def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            return super().execute(raise_on_error)
        except redis.exceptions.RedisError as exc:
            raise translate(exc) from exc


class Client(redis.Redis):
    """redis-py's client, raising the project's errors instead of redis-py's."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        try:
            return super().execute_command(*args, **options)
        except redis.exceptions.RedisError as exc:
            raise translate(exc) from exc

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Pipeline:
        return _Pipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)


def for_rq(client: redis.Redis) -> redis.Redis:
    """A plain redis-py client sharing `client`'s connections, for rq (which expects
    redis-py's exceptions)."""
    return redis.Redis(connection_pool=client.connection_pool)


class _TransientRetry(Retry):
    """Retry connection trouble, but not a refused password: redis-py files auth errors under
    ConnectionError, and retrying one only delays the message the user needs."""

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

        return super().call_with_retry(do, fail, retryable, with_failure_count)


def connect(
    url: str, *, socket_timeout: float | None = 30.0, client_name: str | None = None
) -> Client:
    """A client for `url` with hq-sweep's connection policy.

    Bytes in and out (`decode_responses=False`: everything stored is JSON we decode
    ourselves). TCP keepalive and a periodic health check notice dead peers on long-idle
    worker connections; transient connection errors are retried a few times with
    exponential backoff. Callers issuing blocking commands longer than `socket_timeout`
    must raise it (or pass None). Retried writes may apply twice: state changes that must
    not are fenced by the queue's Lua scripts, not by this client.
    """
    retry = _TransientRetry(
        ExponentialBackoff(cap=1.0, base=0.05),
        retries=3,
        supported_errors=(redis.exceptions.ConnectionError, redis.exceptions.TimeoutError),
    )
    # TCP keepalive has no meaning on (and is refused by) a unix-socket connection.
    tcp: dict[str, Any] = {} if url.lower().startswith("unix:") else {"socket_keepalive": True}
    client: Client = Client.from_url(  # type: ignore[assignment]
        url,
        decode_responses=False,
        health_check_interval=15,
        socket_connect_timeout=5.0,
        socket_timeout=socket_timeout,
        retry=retry,
        client_name=client_name,
        **tcp,
    )
    return client
