"""Where is the Redis server? The one place that answers.

Precedence of `resolve_redis_url` (and `locate_server`, which also says where the URL came
from): an explicit `--redis URL` > `$HQ_SWEEP_REDIS_URL` > the credentials file named by
`$HQ_SWEEP_REDIS_URL_FILE` > the connection file named by `$HQ_SWEEP_CONNECTION_FILE` (those two
are how hq-sweep's own children are told: `server.credentials`) > the connection file that
`hq-sweep server start` leaves in the state directory (only if the server it names answers).
Every message that shows a URL passes it through `redact` first: the password must never reach
a terminal, a log or `ps`.

The connection file is JSON with mode 0600 in the state directory: `$HQ_SWEEP_STATE_DIR`, else
`$XDG_STATE_HOME/hq-sweep`, else `~/.local/state/hq-sweep`.
"""

from __future__ import annotations

import json
import os
import socket
import urllib.parse
from dataclasses import replace
from pathlib import Path

from hq_sweep.env import CONNECTION_FILE, REDIS_URL_FILE
from hq_sweep.errors import EXIT_INVALID, HqSweepError, InvalidInput
from hq_sweep.queue import admin
from hq_sweep.queue.client import redact
from hq_sweep.server.credentials import (
    CredentialsFileError,
    ServerRef,
    check_private,
    read_credentials_file,
)
from hq_sweep.server.info import WILDCARD_BINDS, ServerInfo

__all__ = [
    "CONNECTION_FILE_NAME",
    "ENV_REDIS_URL",
    "ENV_STATE_DIR",
    "WILDCARD_BINDS",
    "BadRedisUrlError",
    "ConnectionFileError",
    "LooseConnectionFileError",
    "NoServerError",
    "ServerInfo",
    "ServerNotAnswering",
    "adopt",
    "auth_ping",
    "connection_file_path",
    "default_state_dir",
    "live_server",
    "locate_server",
    "not_running_message",
    "pid_alive",
    "read_connection_file",
    "redact",
    "remove_connection_file",
    "resolve_redis_url",
    "server_alive",
    "sweep_state_dir",
    "write_connection_file",
    "write_private_file",
]

ENV_REDIS_URL = "HQ_SWEEP_REDIS_URL"
ENV_STATE_DIR = "HQ_SWEEP_STATE_DIR"
CONNECTION_FILE_NAME = "connection.json"
REDIS_SCHEMES = ("redis", "rediss", "unix")
LOOPBACK_BINDS = ("127.0.0.1", "::1", "localhost")

_HOWTO = (
    "Start one with `hq-sweep server start`, point at an existing one with "
    "`--redis redis://:PASSWORD@HOST:PORT/0` (or $HQ_SWEEP_REDIS_URL), "
    "or use `hq-sweep run` to run a sweep entirely on this machine."
)


class NoServerError(HqSweepError):
    """No Redis server could be located; the message says what the user can do."""


class ServerNotAnswering(NoServerError):
    """A server is recorded, and may be on its way back (being restarted): it does not answer."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what}. {_HOWTO}")
        self.what = what


class BadRedisUrlError(InvalidInput):
    """A user-supplied Redis URL is malformed (the message shows it redacted)."""


class ConnectionFileError(HqSweepError):
    """The connection file exists but cannot be read or does not hold a server record."""


class LooseConnectionFileError(ConnectionFileError):
    """The connection file's mode lets group or others at the secrets: `chmod 600` it."""

    exit_code = EXIT_INVALID


def default_state_dir() -> Path:
    """`$HQ_SWEEP_STATE_DIR`, else `$XDG_STATE_HOME/hq-sweep`, else `~/.local/state/hq-sweep`."""
    explicit = os.environ.get(ENV_STATE_DIR, "").strip()
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_STATE_HOME", "").strip()
    base = Path(xdg).expanduser() if xdg else Path.home() / ".local" / "state"
    return base / "hq-sweep"


def sweep_state_dir(sweep_id: str) -> Path:
    """Where a batch sweep's own server keeps its state: `default_state_dir()/sweeps/ID`
    (what `hq-sweep sbatch` uses unless given `--state-dir`)."""
    return default_state_dir() / "sweeps" / sweep_id


def connection_file_path(state_dir: Path | None = None) -> Path:
    """Path of the connection file in `state_dir` (default: `default_state_dir()`)."""
    return (state_dir or default_state_dir()) / CONNECTION_FILE_NAME


def write_private_file(path: Path, text: str) -> None:
    """Atomically write `text` to `path` with mode 0600 (parent created with mode 0700)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    # Created 0600 from the start: a chmod after writing would leave a window of exposure.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_connection_file(info: ServerInfo) -> Path:
    """Record `info` in `info.state_dir`; returns the file's path."""
    path = connection_file_path(info.state_dir)
    write_private_file(path, json.dumps(info.to_json(), indent=2) + "\n")
    return path


def read_connection_file(state_dir: Path | None = None) -> ServerInfo | None:
    """The recorded server, or None when there is no connection file.

    Raises ConnectionFileError when the file exists but is unreadable or malformed, and
    LooseConnectionFileError (exit 2) when group or others may read or write it.
    """
    path = connection_file_path(state_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConnectionFileError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        info = ServerInfo.from_json(json.loads(text))
    except ValueError as exc:  # json.JSONDecodeError is a ValueError too
        raise ConnectionFileError(f"{path} is not a valid connection file ({exc})") from exc
    try:
        check_private(path)  # it holds the secrets: refused, not used, when others may read it
    except CredentialsFileError as exc:
        raise LooseConnectionFileError(str(exc)) from None
    return info


def remove_connection_file(
    state_dir: Path | None = None, *, only_if: ServerInfo | None = None
) -> None:
    """Delete the connection file if present (with `only_if`: only while it names that server)."""
    if only_if is not None:
        try:
            recorded = read_connection_file(state_dir)
        except ConnectionFileError:
            return  # not ours to judge: leave it for `hq-sweep server start` to replace
        if recorded is None or (recorded.pid, recorded.port) != (only_if.pid, only_if.port):
            return
    connection_file_path(state_dir).unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this machine (a zombie child of ours counts as dead)."""
    if pid <= 0:  # kill(0, ...) would address our own process group
        return False
    try:
        # A server we spawned stays a zombie until reaped, and a zombie still accepts
        # kill(pid, 0): reap it here. Until waitpid reports it, it lives: its leader shows
        # as a zombie while its other threads (and its open files, locks) still wind down.
        reaped, _status = os.waitpid(pid, os.WNOHANG)
        return reaped != pid
    except ChildProcessError:
        pass  # not our child: init reaps it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return not _is_zombie(pid)


def _is_zombie(pid: int) -> bool:
    # An orphan whose reaper does not reap (PID 1 of some containers) stays a zombie.
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False  # no procfs (macOS) or already gone
    fields = stat_line.rpartition(")")[2].split()
    return bool(fields) and fields[0] in ("Z", "X")


def auth_ping(info: ServerInfo, timeout: float = 1.0) -> str:
    """AUTH + PING at the recorded address (see `queue.admin.auth_ping`)."""
    return admin.auth_ping(info.probe_host(), info.port, info.password, timeout,
                           user=info.user, tls=info.tls, ca_file=info.ca_file)


def server_alive(info: ServerInfo, timeout: float = 1.0) -> bool:
    """Whether our server answers at the recorded address: AUTH + PING with its password.
    Not whether the recorded pid lives: a server restarted from its config, or by a
    supervisor, has another pid and is the same server (`adopt` records the new one)."""
    # LOADING: replaying its AOF after a restart, alive but not ready yet. Any other answer
    # (refused, WRONGPASS: another server took the port) means it is not our server.
    reply = auth_ping(info, timeout)
    return reply == "PONG" or reply.startswith("LOADING")


def adopt(info: ServerInfo, timeout: float = 1.0) -> ServerInfo:
    """`info` with the pid of the server that answers there now, written to the connection
    file when it changed (a server restarted outside hq-sweep), so `server stop` signals
    the right process."""
    if info.node != socket.gethostname() or pid_alive(info.pid):
        return info
    pid = admin.server_pid(info.probe_host(), info.port, info.admin_secret, timeout,
                           tls=info.tls, ca_file=info.ca_file)
    if pid is None or pid == info.pid:
        return info
    fresh = replace(info, pid=pid)
    write_connection_file(fresh)
    return fresh


def live_server(directory: Path) -> ServerInfo | None:
    """The server recorded in `directory`, if it answers; None when none is recorded, the
    file does not read, or the server is gone."""
    try:
        info = read_connection_file(directory)
    except ConnectionFileError:
        return None
    return adopt(info) if info is not None and server_alive(info) else None


def _checked_url(url: str, source: str) -> str:
    scheme, sep, _rest = url.partition("://")
    if not sep or scheme.lower() not in REDIS_SCHEMES:
        raise BadRedisUrlError(
            f"{source}: {redact(url)!r} is not a Redis URL "
            "(expected redis://, rediss:// or unix://)"
        )
    try:  # what redis-py's from_url will parse: a bad host or port fails here, clearly
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (a property that validates)
    except ValueError as exc:
        raise BadRedisUrlError(f"{source}: {redact(url)!r} is not a valid URL ({exc})") from None
    return url


def not_running_message(info: ServerInfo) -> str:
    """Why the recorded server cannot be used from here, for error messages."""
    where = f"{connection_file_path(info.state_dir)} ({info.redacted_url}, pid {info.pid})"
    if info.node != socket.gethostname() and info.bind in LOOPBACK_BINDS:
        return f"the server in {where} listens on loopback on {info.node}: unreachable from here"
    return f"the server recorded in {where} is not running"


def resolve_redis_url(explicit: str | None = None, *, state_dir: Path | None = None,
                      sweep: str | None = None) -> str:
    """The Redis URL to use (see `locate_server`)."""
    return locate_server(explicit, state_dir=state_dir, sweep=sweep).url


def locate_server(explicit: str | None = None, *, state_dir: Path | None = None,
                  sweep: str | None = None) -> ServerRef:
    """The Redis URL to use, and the file it came from: `explicit` > `$HQ_SWEEP_REDIS_URL` >
    the files named by `$HQ_SWEEP_REDIS_URL_FILE` / `$HQ_SWEEP_CONNECTION_FILE` > a live
    server's file in the state dir > (for `sweep`) a live server in that sweep's own dir
    (`sweep_state_dir`, where batch jobs keep theirs), so `--sweep ID` alone finds a batch sweep.

    Raises NoServerError (telling the user what to do) when nothing is found, and
    BadRedisUrlError when an explicit or environment URL is not a Redis URL.
    """
    if explicit and explicit.strip():
        return ServerRef(_checked_url(explicit.strip(), "--redis"))
    env = os.environ.get(ENV_REDIS_URL, "").strip()
    if env:
        return ServerRef(_checked_url(env, f"${ENV_REDIS_URL}"))
    named = _named_file()
    if named is not None:
        return named
    if state_dir is None and sweep:
        own = sweep_state_dir(sweep)
        if live_server(default_state_dir()) is None and live_server(own) is not None:
            state_dir = own
    directory = state_dir or default_state_dir()
    try:
        info = read_connection_file(directory)
    except LooseConnectionFileError:
        raise  # its own message says what to do (chmod 600)
    except ConnectionFileError as exc:
        raise NoServerError(f"No usable Redis server: {exc}. {_HOWTO}") from exc
    if info is None:
        raise NoServerError(
            f"No Redis server found: no --redis URL, no ${ENV_REDIS_URL}, and no connection "
            f"file in {directory}. {_HOWTO}"
        )
    if not server_alive(info):
        elsewhere = info.node != socket.gethostname() and info.bind in LOOPBACK_BINDS
        if elsewhere:
            raise NoServerError(f"{not_running_message(info)}. {_HOWTO}")
        raise ServerNotAnswering(not_running_message(info))
    path = connection_file_path(directory)
    return ServerRef(info.url, path, CONNECTION_FILE, lambda: _recorded_url(path))


def _named_file() -> ServerRef | None:
    """The server in the file an hq-sweep parent named in our environment, if one did. Not
    checked for life: a child rides out a server restart (and follows a move) by itself."""
    url_file = os.environ.get(REDIS_URL_FILE, "").strip()
    if url_file:
        credentials = Path(url_file)

        def reread_credentials() -> str:
            return _checked_url(read_credentials_file(credentials), str(credentials))

        return ServerRef(reread_credentials(), credentials, REDIS_URL_FILE, reread_credentials)
    connection_file = os.environ.get(CONNECTION_FILE, "").strip()
    if connection_file:
        path = Path(connection_file)
        return ServerRef(_recorded_url(path), path, CONNECTION_FILE, lambda: _recorded_url(path))
    return None


def _recorded_url(path: Path) -> str:
    """The URL in connection file `path` (which must be named like one)."""
    if path.name != CONNECTION_FILE_NAME:
        raise ConnectionFileError(f"${CONNECTION_FILE}: {path} is not a {CONNECTION_FILE_NAME}")
    info = read_connection_file(path.parent)
    if info is None:
        raise ConnectionFileError(f"{path} is gone: no server is recorded there")
    return info.url
