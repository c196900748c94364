"""hq_sweep.server.process and `hq-sweep server ...` against real valkey-server processes."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hq_sweep.cli.server import server_app
from hq_sweep.errors import RedisRefused
from hq_sweep.queue.client import connect
from hq_sweep.server.connection import (
    connection_file_path,
    pid_alive,
    read_connection_file,
    resolve_redis_url,
)
from hq_sweep.server.embedded import EmbeddedServer
from hq_sweep.server.process import (
    CONF_NAME,
    LOG_NAME,
    ServerAlreadyRunningError,
    ServerInfo,
    ServerStartError,
    find_server_binary,
    server_alive,
    start_server,
    stop_server,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(tmp_path / "embedded") as server:
        yield server


@pytest.fixture
def detached(tmp_path: Path) -> Iterator[ServerInfo]:
    info = start_server(tmp_path / "detached")
    try:
        yield info
    finally:
        stop_server(info)


def _raw_command(port: int, line: bytes) -> bytes:
    """Send one inline command on a fresh socket: no client library, no HELLO, no AUTH."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(line + b"\r\n")
        return sock.recv(4096)


def test_binary_is_found() -> None:
    binary = find_server_binary()
    assert binary.is_file()
    assert os.access(binary, os.X_OK)


def test_password_is_required(embedded: EmbeddedServer) -> None:
    assert _raw_command(embedded.port, b"PING").startswith(b"-NOAUTH")
    assert _raw_command(embedded.port, b"AUTH wrong-password").startswith(b"-WRONGPASS")
    assert connect(embedded.url).ping()


def test_password_stays_out_of_ps_environ_and_log(embedded: EmbeddedServer) -> None:
    proc = Path(f"/proc/{embedded.pid}")
    shown = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
    shown += subprocess.run(["ps", "-eo", "args"], capture_output=True, check=True).stdout
    connect(embedded.url).set("hqs:k", "v")
    embedded.restart()
    shown += (embedded.info.state_dir / LOG_NAME).read_bytes()
    for secret in (embedded.password.encode(), embedded.info.admin_secret.encode()):
        assert secret not in shown


def test_secret_files_are_private(embedded: EmbeddedServer) -> None:
    state_dir = embedded.info.state_dir
    conf = (state_dir / CONF_NAME).read_text()
    assert f'requirepass "{embedded.info.admin_secret}"' in conf
    assert embedded.password not in conf  # the sweep user's: only its SHA-256
    assert "appendonly yes" in conf and "appendfsync everysec" in conf
    for path in (state_dir / CONF_NAME, connection_file_path(state_dir)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_connection_file(state_dir) == embedded.info


def test_aof_survives_restart(embedded: EmbeddedServer) -> None:
    client = connect(embedded.url)
    client.set("hqs:kept", b"across restarts")
    client.rpush("hqs:queue", b"a", b"b")
    client.close()
    first = (embedded.pid, embedded.port, embedded.password)
    embedded.restart()
    assert embedded.pid != first[0]
    assert (embedded.port, embedded.password) == first[1:]
    client = connect(embedded.url)
    assert client.get("hqs:kept") == b"across restarts"
    assert client.lrange("hqs:queue", 0, -1) == [b"a", b"b"]
    assert connect(embedded.admin_url).config_get("appendonly") == {"appendonly": "yes"}
    client.close()


def test_stop_kills_process_and_exit_cleans_up(tmp_path: Path) -> None:
    with EmbeddedServer() as server:
        pid, directory = server.pid, server.info.state_dir
        server.stop()
        assert not pid_alive(pid)
        assert not server.running
        server.start()  # startable again, same port
        pid = server.pid
        assert server_alive(server.info)
    assert not pid_alive(pid)
    assert not directory.exists()  # the temporary directory it created is gone


def test_kill_then_start_again(embedded: EmbeddedServer) -> None:
    pid = embedded.pid
    embedded.kill()
    assert not pid_alive(pid)
    embedded.start()
    assert connect(embedded.url).ping()


def test_redis_url_fixture_gives_empty_keyspace(redis_url: str) -> None:
    client = connect(redis_url)
    assert client.scan(0) == (0, [])
    client.set("hqs:leftover", 1)  # the next test's FLUSHALL removes it
    client.close()


def test_detached_server_and_connection_file(
    detached: ServerInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert server_alive(detached)
    monkeypatch.setenv("HQ_SWEEP_STATE_DIR", str(detached.state_dir))
    assert resolve_redis_url() == detached.url
    assert read_connection_file(detached.state_dir) == detached
    with pytest.raises(ServerAlreadyRunningError, match="already running"):
        start_server(detached.state_dir)
    assert server_alive(detached)


def test_stop_removes_connection_file(detached: ServerInfo) -> None:
    stop_server(detached)
    assert not pid_alive(detached.pid)
    assert read_connection_file(detached.state_dir) is None
    stop_server(detached)  # stopping again is harmless


def test_stale_connection_file_is_replaced(detached: ServerInfo) -> None:
    os.kill(detached.pid, signal.SIGKILL)
    fresh = start_server(detached.state_dir)
    try:
        assert fresh.pid != detached.pid
        assert server_alive(fresh)
        assert read_connection_file(detached.state_dir) == fresh
    finally:
        stop_server(fresh)


def test_busy_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ServerStartError, match="Address already in use") as caught:
            start_server(tmp_path / "busy", port=port)
    assert "\n" not in str(caught.value)
    assert read_connection_file(tmp_path / "busy") is None


@pytest.mark.timeout(60)
def test_stop_escalates_to_signals_when_server_hangs(detached: ServerInfo) -> None:
    os.kill(detached.pid, signal.SIGSTOP)  # answers nothing, not even SHUTDOWN
    try:
        stop_server(detached, timeout=3)
    finally:
        if pid_alive(detached.pid):
            os.kill(detached.pid, signal.SIGKILL)
    assert not pid_alive(detached.pid)


def _cli(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(server_app, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.timeout(60)
def test_cli_lifecycle(tmp_path: Path) -> None:
    state = ["--state-dir", str(tmp_path / "cli")]
    code, _, err = _cli("start", *state)
    assert code == 0 and "redis://hqsweep:***@127.0.0.1:" in err
    info = read_connection_file(tmp_path / "cli")
    assert info is not None and server_alive(info)
    try:
        assert info.password not in err
        code, _, err = _cli("start", *state)  # says where it runs, changes nothing
        assert code == 0 and "already running" in err and info.redacted_url in err
        assert read_connection_file(tmp_path / "cli") == info
        code, _, err = _cli("start", "--port", str(info.port + 1), *state)
        assert code == 1 and f"on port {info.port}" in err
        code, out, _ = _cli("status", "--json", *state)
        record = json.loads(out)
        assert code == 0 and record["running"] and record["pid"] == info.pid
        assert record["url"] == info.redacted_url and info.password not in out
        code, out, err = _cli("status", *state)  # a result: stdout, one line per row
        assert code == 0 and info.password not in out + err and str(info.pid) in out
        assert f"  state dir {info.state_dir}\n" in out and err == ""
        assert _cli("url", *state)[:2] == (0, info.url + "\n")
        assert _cli("url", "--redacted", *state)[:2] == (0, info.redacted_url + "\n")
        code, _, err = _cli("stop", *state)
        assert code == 0 and "stopped" in err and not pid_alive(info.pid)
    finally:
        stop_server(info)
    assert _cli("stop", *state)[0] == 1
    code, out, _ = _cli("status", "--json", *state)
    assert code == 1 and json.loads(out)["running"] is False
    code, _, err = _cli("url", *state)
    assert code == 1 and "hq-sweep server start" in err


@pytest.mark.timeout(60)
def test_advertise_names_the_host_clients_use(tmp_path: Path) -> None:
    state = ["--state-dir", str(tmp_path / "adv")]
    code, _, err = _cli("start", "--advertise", "localhost", *state)
    assert code == 0, err
    info = read_connection_file(tmp_path / "adv")
    assert info is not None
    try:
        assert info.host == "localhost" and "@localhost:" in info.url
        assert server_alive(info)  # probed at its bind address on its own node
        assert connect(info.url).ping()
        assert _cli("start", "--advertise", "a b", "--state-dir", str(tmp_path / "x"))[0] == 1
    finally:
        stop_server(info)


def test_cli_start_replaces_dead_server(tmp_path: Path) -> None:
    state = ["--state-dir", str(tmp_path / "cli")]
    assert _cli("start", *state)[0] == 0
    dead = read_connection_file(tmp_path / "cli")
    assert dead is not None
    os.kill(dead.pid, signal.SIGKILL)
    assert _cli("start", *state)[0] == 0
    fresh = read_connection_file(tmp_path / "cli")
    assert fresh is not None and fresh.pid != dead.pid
    assert _cli("stop", *state)[0] == 0


@pytest.mark.timeout(60)
def test_detached_server_outlives_the_cli_process(tmp_path: Path) -> None:
    """A real `start` in a child process returns promptly and leaves the server running."""
    state = ["--state-dir", str(tmp_path / "sub")]
    launcher = "from hq_sweep.cli.server import server_app; server_app()"
    started = subprocess.run(
        [sys.executable, "-c", launcher, "start", *state], capture_output=True, timeout=30
    )
    info = read_connection_file(tmp_path / "sub")
    assert started.returncode == 0, started.stderr
    assert info is not None
    try:
        assert server_alive(info)
        assert info.password.encode() not in started.stdout + started.stderr
        stopped = subprocess.run(
            [sys.executable, "-c", launcher, "stop", *state], capture_output=True, timeout=30
        )
        assert stopped.returncode == 0, stopped.stderr
        assert not server_alive(info)
    finally:
        stop_server(info)


def test_wrong_password_is_refused(embedded: EmbeddedServer) -> None:
    wrong = embedded.url.replace(embedded.password, "not-the-password")
    with pytest.raises(RedisRefused, match="refused the password"):
        connect(wrong).ping()
    alive_elsewhere = ServerInfo("127.0.0.1", embedded.port, "nope", embedded.pid, Path("."))
    assert not server_alive(alive_elsewhere)  # a server with another password is not ours


def _sigterm_foreground_server(
    state_dir: Path, ready: Callable[[ServerInfo | None], bool], poll_s: float
) -> tuple[int, bytes, ServerInfo]:
    """Run `server start --foreground`, send it SIGTERM (as scancel would) once `ready(info)`
    holds for its connection file, and wait for it: (exit status, stderr, server info)."""
    launcher = "from hq_sweep.cli.server import server_app; server_app()"
    cli = subprocess.Popen(
        [sys.executable, "-c", launcher, "start", "--foreground", "--state-dir", str(state_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        while not ready(info := read_connection_file(state_dir)):
            assert cli.poll() is None, cli.stderr.read() if cli.stderr else ""
            assert time.monotonic() < deadline, "the foreground server did not come up"
            time.sleep(poll_s)
        cli.send_signal(signal.SIGTERM)
        _, err = cli.communicate(timeout=30)
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.communicate()
    assert info is not None
    return cli.returncode, err, info


@pytest.mark.timeout(60)
def test_foreground_server_stops_with_the_cli(tmp_path: Path) -> None:
    state_dir = tmp_path / "fg"
    returncode, err, info = _sigterm_foreground_server(
        state_dir, lambda info: info is not None and server_alive(info), poll_s=0.05)
    assert returncode == 0, err
    assert not pid_alive(info.pid)
    assert read_connection_file(state_dir) is None


@pytest.mark.timeout(60)
def test_sigterm_the_moment_a_foreground_server_exists_still_stops_it(tmp_path: Path) -> None:
    """scancel right after start: the CLI must not die before it can stop its server."""
    returncode, err, info = _sigterm_foreground_server(
        tmp_path / "fg", lambda info: info is not None, poll_s=0.005)
    assert returncode == 0, err
    assert not pid_alive(info.pid)
