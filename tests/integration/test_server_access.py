"""Nobody else gets in (issue 14, second part): the ACL user sweeps log in as, the admin
secret, protected mode and loopback, TLS, private files. Real servers over real sockets, the
CLI as a subprocess, real sweeps."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from hq_sweep.errors import RedisRefused, TransportError
from hq_sweep.queue.client import connect
from hq_sweep.server.acl import SWEEP_USER
from hq_sweep.server.binary import supports_tls
from hq_sweep.server.connection import (
    CONNECTION_FILE_NAME,
    pid_alive,
    read_connection_file,
    server_alive,
)
from hq_sweep.server.embedded import EmbeddedServer
from hq_sweep.server.process import ServerInfo, find_server_binary, start_server, stop_server
from tests.integration.helpers import hq, poll, write_sweep

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]
TOY = str(Path(__file__).parent.parent / "workers" / "toy.py")
SYSTEM_REDIS = Path("/usr/bin/redis-server")
FORBIDDEN = [("CONFIG", "GET", "*"), ("KEYS", "*"), ("FLUSHALL",), ("FLUSHDB",),
             ("DEBUG", "SLEEP", "0"), ("MODULE", "LIST"), ("SHUTDOWN",), ("MONITOR",),
             ("SAVE",), ("REPLICAOF", "NO", "ONE"), ("ACL", "LIST"), ("SCRIPT", "FLUSH"),
             ("SET", "not-ours", "1"), ("GET", "not-ours")]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerInfo]:
    info = start_server(tmp_path / "state")
    try:
        yield info
    finally:
        stop_server(info)


def _env(state_dir: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HQ_SWEEP_")}
    return {**env, "HQ_SWEEP_STATE_DIR": str(state_dir), **extra}


def _small_sweep(tmp_path: Path, name: str, run_cap: int = 8) -> Path:
    return write_sweep(tmp_path, {
        "name": name, "method": "random", "run_cap": run_cap, "worker": TOY,
        "metric": {"name": "value", "goal": "minimize"},
        "parameters": {"x": {"min": 0.0, "max": 6.0}},
    }, name=f"{name}.yaml")  # fmt: skip


def _plain_answer(port: int) -> bytes:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64)
    except OSError:
        return b""  # reset by the TLS side


def _raw(port: int, line: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(line + b"\r\n")
        return sock.recv(4096)


def test_clients_without_or_with_a_wrong_password_are_refused(
    server: ServerInfo, tmp_path: Path
) -> None:
    assert _raw(server.port, b"PING").startswith(b"-NOAUTH")
    assert _raw(server.port, b"AUTH hqsweep wrong").startswith(b"-WRONGPASS")
    secrets = (server.password, server.admin_secret)
    for url in (f"redis://127.0.0.1:{server.port}/0",
                f"redis://{SWEEP_USER}:wrong@127.0.0.1:{server.port}/0",
                f"redis://:{server.password}@127.0.0.1:{server.port}/0"):  # not the admin's
        done = hq(["list"], _env(tmp_path / "elsewhere", HQ_SWEEP_REDIS_URL=url), timeout=60)
        assert done.returncode == 1, done.stderr
        assert "refused" in done.stderr and "Traceback" not in done.stderr
        assert not any(secret in done.stdout + done.stderr for secret in secrets)


def test_the_sweep_user_may_not_administer_the_server(redis_server: EmbeddedServer) -> None:
    client = connect(redis_server.url)
    admin = connect(redis_server.admin_url)
    assert redis_server.info.user == SWEEP_USER and redis_server.password != \
        redis_server.info.admin_secret
    for command in FORBIDDEN:
        # DRYRUN: whether the ACL lets it through, without running it
        verdict = admin.execute_command("ACL", "DRYRUN", SWEEP_USER, *command)
        assert verdict != b"OK" and b"no permissions" in verdict.lower(), command
        if command[0] not in ("DEBUG", "MONITOR"):  # DEBUG: off anyway; MONITOR: streams
            with pytest.raises(RedisRefused, match="may not run this command"):
                client.execute_command(*command)
    assert client.ping() and admin.dbsize() >= 0  # both still connected, nothing flushed


@pytest.mark.timeout(180)
def test_a_whole_sweep_runs_as_the_sweep_user_and_leaves_only_private_files(
    server: ServerInfo, tmp_path: Path
) -> None:
    env = _env(server.state_dir)
    done = hq(["run", str(_small_sweep(tmp_path, "acl")), "--workers", "2", "--json"], env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["trials"]["complete"] == 8
    refused = connect(server.admin_url).execute_command("ACL", "LOG")
    assert refused == [], refused  # not one command the sweep sent (rq's too) was refused
    loose = []
    for root, dirs, files in os.walk(server.state_dir):
        for name in dirs + files:
            path = Path(root, name)
            mode = stat.S_IMODE(path.lstat().st_mode)
            if mode != (0o700 if path.is_dir() else 0o600):
                loose.append(f"{path} {mode:04o}")
    assert not loose, loose
    assert stat.S_IMODE(server.state_dir.stat().st_mode) == 0o700
    assert any((server.state_dir / "data").rglob("*.aof")), "the AOF is where we looked"


def test_server_stop_and_status_use_the_admin_secret(tmp_path: Path) -> None:
    state_dir = tmp_path / "cli"
    assert hq(["server", "start"], _env(state_dir)).returncode == 0
    info = read_connection_file(state_dir)
    assert info is not None and info.user == SWEEP_USER
    status = hq(["server", "status", "--json"], _env(state_dir))
    record = json.loads(status.stdout)
    assert status.returncode == 0 and record["keys"] == 0 and record["version"]
    assert info.password not in status.stdout and info.admin_secret not in status.stdout
    stopped = hq(["server", "stop"], _env(state_dir))
    assert stopped.returncode == 0 and "stopped" in stopped.stderr, stopped.stderr
    assert not pid_alive(info.pid) and read_connection_file(state_dir) is None


def _old_style_server(state_dir: Path, password: str) -> tuple[subprocess.Popen[bytes], int]:
    """A server as versions before ACLs started it: requirepass alone, and its record."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (state_dir / "data").mkdir(parents=True, mode=0o700)
    conf = state_dir / "valkey.conf"
    conf.write_text(f"bind 127.0.0.1\nport {port}\nrequirepass {password}\nappendonly yes\n"
                    f'dir "{state_dir / "data"}"\nsave ""\n')
    conf.chmod(0o600)
    proc = subprocess.Popen([str(find_server_binary()), str(conf)], cwd=state_dir,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    record = {"host": "127.0.0.1", "port": port, "password": password, "pid": proc.pid,
              "state_dir": str(state_dir), "bind": "127.0.0.1", "node": socket.gethostname(),
              "started_at": "", "url": f"redis://:{password}@127.0.0.1:{port}/0"}
    path = state_dir / CONNECTION_FILE_NAME
    path.write_text(json.dumps(record))
    path.chmod(0o600)
    return proc, port


def test_a_connection_file_from_before_acls_still_works(tmp_path: Path) -> None:
    state_dir = tmp_path / "old"
    old_password = "an-old-password-from-before-acls-0123456789"
    proc, port = _old_style_server(state_dir, old_password)
    try:
        old = read_connection_file(state_dir)
        assert old is not None and old.user == "" and old.admin_secret == old_password
        poll(lambda: server_alive(old), 10, "the old server to answer")
        assert old.url == f"redis://:{old_password}@127.0.0.1:{port}/0"
        done = hq(["list"], _env(state_dir))
        assert done.returncode == 0, done.stderr
        proc.kill()
        proc.wait(10)
        # Its successor keeps the old secret as the admin's (old URLs still get in) and
        # gives clients the sweep user.
        fresh = start_server(state_dir)
        try:
            assert fresh.port == port and fresh.user == SWEEP_USER
            assert fresh.admin_secret == old_password and fresh.password != old_password
            assert connect(old.url).ping() and connect(fresh.url).ping()
        finally:
            stop_server(fresh)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_a_connection_file_others_may_read_is_refused(server: ServerInfo) -> None:
    path = server.state_dir / CONNECTION_FILE_NAME
    path.chmod(0o644)
    env = _env(server.state_dir)
    for args in (["server", "status"], ["list"], ["server", "url"]):
        done = hq(args, env, timeout=60)
        assert done.returncode == 2, (args, done.stderr)
        assert f"chmod 600 {path}" in done.stderr and "Traceback" not in done.stderr
        assert server.password not in done.stdout + done.stderr
    path.chmod(0o600)
    assert hq(["list"], env).returncode == 0


def _non_loopback_address() -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # no packet is sent: picks the outgoing interface
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def test_protected_mode_and_loopback_unless_bind(server: ServerInfo) -> None:
    admin = connect(server.admin_url)
    assert admin.config_get("protected-mode") == {"protected-mode": "yes"}
    assert admin.config_get("bind") == {"bind": "127.0.0.1"}
    elsewhere = _non_loopback_address()
    if elsewhere is not None:  # this node's own network address: nothing listens there
        with pytest.raises(OSError):
            socket.create_connection((elsewhere, server.port), timeout=2).close()


def test_tls_with_the_embedded_server_is_one_clear_line(tmp_path: Path) -> None:
    binary = find_server_binary()
    if supports_tls(binary):
        pytest.skip(f"{binary} has TLS")
    done = hq(["server", "start", "--tls"], _env(tmp_path / "tls"))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "built without TLS" in lines[0] and "--server-binary" in lines[0]
    assert read_connection_file(tmp_path / "tls") is None


@pytest.mark.timeout(180)
def test_a_sweep_over_tls_end_to_end(tmp_path: Path) -> None:
    if not SYSTEM_REDIS.exists() or not supports_tls(SYSTEM_REDIS):
        pytest.skip(f"no TLS-capable {SYSTEM_REDIS}")
    if shutil.which("openssl") is None:
        pytest.skip("no openssl to make a certificate with")
    state_dir = tmp_path / "tls"
    env = _env(state_dir, HQ_SWEEP_SERVER_BINARY=str(SYSTEM_REDIS))
    started = hq(["server", "start", "--tls"], env)
    assert started.returncode == 0, started.stderr
    info = read_connection_file(state_dir)
    assert info is not None and info.tls and info.url.startswith("rediss://hqsweep:")
    try:
        assert f"ssl_ca_certs={state_dir}/tls/ca.crt" in info.url
        # Plain TCP gets no Redis answer (TLS only), and there is no plain port at all.
        assert not _plain_answer(info.port).startswith((b"+", b"-"))
        plain = info.url.replace("rediss://", "redis://").partition("?")[0]
        with pytest.raises(TransportError):
            connect(plain, socket_timeout=3).ping()
        assert connect(info.admin_url).config_get("port") == {"port": "0"}
        done = hq(["run", str(_small_sweep(tmp_path, "tls", 6)), "--workers", "2", "--json"],
                  env)
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["trials"]["complete"] == 6
        key_modes = {stat.S_IMODE(p.stat().st_mode) for p in (state_dir / "tls").iterdir()}
        assert key_modes == {0o600}
        stopped = hq(["server", "stop"], env)
        assert stopped.returncode == 0, stopped.stderr
        assert not pid_alive(info.pid)
    finally:
        stop_server(info)
