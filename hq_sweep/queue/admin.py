"""Commands about the server itself, not a sweep: is it up, what state is it in, shut down.

`auth_ping` speaks RESP over a bare socket rather than through redis-py: a failed redis-py
call leaves a reference cycle that holds the caller's frames (and e.g. a Popen in them) until
the cyclic GC runs, and it would add a HELLO round trip and retries to a check that must be
quick.
"""

from __future__ import annotations

import socket
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from hq_sweep.errors import TransportError
from hq_sweep.queue.client import Client, connect


def auth_ping(host: str, port: int, password: str, timeout: float = 1.0) -> str:
    """AUTH + PING: "PONG" when the server is up and takes the password, else its error reply
    ("LOADING ...", "WRONGPASS ...") or "" when unreachable."""
    secret = password.encode()
    request = b"*2\r\n$4\r\nAUTH\r\n$%d\r\n%s\r\n*1\r\n$4\r\nPING\r\n" % (len(secret), secret)
    reply = b""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request)
            while reply.count(b"\r\n") < 2:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                reply += chunk
    except OSError:
        return ""  # refused, unreachable or timed out
    lines = reply.decode("utf-8", "replace").split("\r\n")
    if len(lines) < 3:
        return ""
    # A refused AUTH explains more than the NOAUTH that PING then gets.
    return lines[0][1:] if lines[0] != "+OK" else lines[1][1:]


def ping(client: Client) -> None:
    """Raises `RedisUnavailable` while the server cannot be reached."""
    client.ping()


def server_details(url: str, timeout: float = 2.0) -> dict[str, Any]:
    """Live figures from INFO; empty when the server does not answer in time."""
    client = connect(url, socket_timeout=timeout)
    try:
        raw = client.info()
        keys = int(client.dbsize())
    except TransportError:
        return {}
    finally:
        client.close()
    return {
        "version": raw.get("valkey_version") or raw.get("redis_version"),
        "uptime_s": raw.get("uptime_in_seconds"),
        "used_memory": raw.get("used_memory"),
        "used_memory_human": raw.get("used_memory_human"),
        "keys": keys,
        "clients": raw.get("connected_clients"),
        "aof_enabled": bool(raw.get("aof_enabled")),
    }


def request_shutdown(host: str, port: int, password: str, timeout: float) -> None:
    """SHUTDOWN (which flushes the AOF); quiet when the server is unreachable or refuses:
    the caller then falls back to signals."""
    client = redis.Redis(
        host=host, port=port, password=password,
        socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0),
    )  # fmt: skip
    try:
        client.shutdown()  # redis-py treats the dropped link as success
    except (redis.exceptions.RedisError, OSError):
        pass
    finally:
        client.close()


def server_pid(host: str, port: int, password: str, timeout: float = 1.0) -> int | None:
    """The process id of the server answering there (INFO server), None when it does not."""
    client = redis.Redis(
        host=host, port=port, password=password,
        socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0),
    )  # fmt: skip
    try:
        pid = client.info("server").get("process_id")
    except (redis.exceptions.RedisError, OSError):
        return None
    finally:
        client.close()
    return pid if isinstance(pid, int) else None
