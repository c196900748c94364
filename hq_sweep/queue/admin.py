"""Commands about the server itself, not a sweep: is it up, what state is it in, shut down.

The only code that uses a server's admin secret (the default user's password, see
`hq_sweep.server.acl`): `server_pid` and `request_shutdown` take it, and `server_details`
is given the admin URL. `auth_ping` logs in as whoever it is given (the sweep user, for
liveness). Each takes `tls`/`ca_file` for a server that serves TLS only.

`auth_ping` speaks RESP over a bare socket rather than through redis-py: a failed redis-py
call leaves a reference cycle that holds the caller's frames (and e.g. a Popen in them) until
the cyclic GC runs, and it would add a HELLO round trip and retries to a check that must be
quick.
"""

from __future__ import annotations

import socket
import ssl
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from hq_sweep.errors import TransportError
from hq_sweep.queue.client import Client, connect


def _bulk(value: str) -> bytes:
    raw = value.encode()
    return b"$%d\r\n%s\r\n" % (len(raw), raw)


def _open(host: str, port: int, timeout: float, tls: bool, ca_file: str) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=timeout)
    if not tls:
        return sock
    try:
        context = ssl.create_default_context(cafile=ca_file or None)
        return context.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


def auth_ping(host: str, port: int, password: str, timeout: float = 1.0, *, user: str = "",
              tls: bool = False, ca_file: str = "") -> str:
    """AUTH [user] + PING: "PONG" when the server is up and takes the login, else its error
    reply ("LOADING ...", "WRONGPASS ...") or "" when unreachable (or its TLS fails)."""
    login = [user, password] if user else [password]
    auth = b"*%d\r\n$4\r\nAUTH\r\n" % (len(login) + 1) + b"".join(map(_bulk, login))
    request = auth + b"*1\r\n$4\r\nPING\r\n"
    reply = b""
    try:
        with _open(host, port, timeout, tls, ca_file) as sock:
            sock.sendall(request)
            while reply.count(b"\r\n") < 2:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                reply += chunk
    except (OSError, ValueError):  # refused, unreachable, timed out, a TLS failure
        return ""
    lines = reply.decode("utf-8", "replace").split("\r\n")
    if len(lines) < 3:
        return ""
    # A refused AUTH explains more than the NOAUTH that PING then gets.
    return lines[0][1:] if lines[0] != "+OK" else lines[1][1:]


def _admin_client(host: str, port: int, password: str, timeout: float, tls: bool,
                  ca_file: str) -> redis.Redis:
    encrypted: dict[str, Any] = {"ssl": True, "ssl_ca_certs": ca_file or None} if tls else {}
    return redis.Redis(
        host=host, port=port, password=password,
        socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0),
        **encrypted,
    )  # fmt: skip


def ping(client: Client) -> None:
    """Raises `RedisUnavailable` while the server cannot be reached."""
    client.ping()


def server_details(url: str, timeout: float = 2.0) -> dict[str, Any]:
    """Live figures from INFO and DBSIZE (`url`: the admin URL; the sweep user may not ask
    DBSIZE); empty when the server does not answer in time."""
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


def request_shutdown(host: str, port: int, password: str, timeout: float, *,
                     tls: bool = False, ca_file: str = "") -> None:
    """SHUTDOWN (which flushes the AOF) with the admin secret; quiet when the server is
    unreachable or refuses: the caller then falls back to signals."""
    client = _admin_client(host, port, password, timeout, tls, ca_file)
    try:
        client.shutdown()  # redis-py treats the dropped link as success
    except (redis.exceptions.RedisError, OSError):
        pass
    finally:
        client.close()


def server_pid(host: str, port: int, password: str, timeout: float = 1.0, *,
               tls: bool = False, ca_file: str = "") -> int | None:
    """The process id of the server answering there (INFO server, with the admin secret),
    None when it does not."""
    client = _admin_client(host, port, password, timeout, tls, ca_file)
    try:
        pid = client.info("server").get("process_id")
    except (redis.exceptions.RedisError, OSError):
        return None
    finally:
        client.close()
    return pid if isinstance(pid, int) else None
