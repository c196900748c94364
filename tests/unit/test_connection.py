"""hq_sweep.server.connection without a server: precedence, redaction, files and messages."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import redis

from hq_sweep.errors import RedisUnavailable
from hq_sweep.queue.client import connect
from hq_sweep.server import connection
from hq_sweep.server.connection import (
    BadRedisUrlError,
    ConnectionFileError,
    NoServerError,
    ServerInfo,
    connection_file_path,
    default_state_dir,
    pid_alive,
    read_connection_file,
    redact,
    remove_connection_file,
    resolve_redis_url,
    server_alive,
    write_connection_file,
)

SECRET = "s3cr3t-Pa55word_xyz"


def _info(state_dir: Path, **overrides: object) -> ServerInfo:
    fields: dict[str, object] = dict(
        host="127.0.0.1", port=6390, password=SECRET, pid=os.getpid(), state_dir=state_dir
    )
    fields.update(overrides)
    return ServerInfo(**fields)  # type: ignore[arg-type]


@pytest.fixture
def state_dir() -> Path:
    # conftest points HQ_SWEEP_STATE_DIR at a fresh temporary directory for every test.
    return default_state_dir()


@pytest.fixture
def alive(monkeypatch: pytest.MonkeyPatch) -> dict[str, bool]:
    """Control what resolve_redis_url believes about the recorded server's liveness."""
    answer = {"alive": True}
    monkeypatch.setattr(connection, "server_alive", lambda info: answer["alive"])
    return answer


def test_state_dir_precedence(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HQ_SWEEP_STATE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert default_state_dir() == tmp_path / "explicit"
    monkeypatch.delenv("HQ_SWEEP_STATE_DIR")
    assert default_state_dir() == tmp_path / "xdg" / "hq-sweep"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_state_dir() == tmp_path / "home" / ".local" / "state" / "hq-sweep"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:pw@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://user:pw@host:6379", "redis://user:***@host:6379"),
        ("rediss://default:p%40ss@h:1/2", "rediss://default:***@h:1/2"),
        ("redis://pw-only@host", "redis://***@host"),
        ("redis://host:6379/0", "redis://host:6379/0"),
        ("unix://:pw@/run/redis.sock?db=1", "unix://:***@/run/redis.sock?db=1"),
        ("redis://host/0?password=pw&x=1", "redis://host/0?password=***&x=1"),
        ("redis://:a@b@host:1/0", "redis://:***@host:1/0"),
        ("not a url", "not a url"),
    ],
)
def test_redact(url: str, expected: str) -> None:
    assert redact(url) == expected


def test_server_info_urls(tmp_path: Path) -> None:
    info = _info(tmp_path)
    assert info.url == f"redis://:{SECRET}@127.0.0.1:6390/0"
    assert info.redacted_url == "redis://:***@127.0.0.1:6390/0"
    assert _info(tmp_path, host="::1").redacted_url == "redis://:***@[::1]:6390/0"
    odd = _info(tmp_path, password="a/b@c")
    assert redis.connection.parse_url(odd.url)["password"] == "a/b@c"


def test_resolve_precedence(
    monkeypatch: pytest.MonkeyPatch, state_dir: Path, alive: dict[str, bool]
) -> None:
    write_connection_file(_info(state_dir))
    monkeypatch.setenv("HQ_SWEEP_REDIS_URL", "redis://:env@envhost:1/0")
    assert resolve_redis_url("redis://:cli@clihost:2/0") == "redis://:cli@clihost:2/0"
    assert resolve_redis_url() == "redis://:env@envhost:1/0"
    monkeypatch.setenv("HQ_SWEEP_REDIS_URL", "  ")  # blank counts as unset
    assert resolve_redis_url() == f"redis://:{SECRET}@127.0.0.1:6390/0"
    assert resolve_redis_url("") == f"redis://:{SECRET}@127.0.0.1:6390/0"


def test_resolve_explicit_state_dir(tmp_path: Path, alive: dict[str, bool]) -> None:
    write_connection_file(_info(tmp_path / "elsewhere", port=7000))
    assert resolve_redis_url(state_dir=tmp_path / "elsewhere").endswith("@127.0.0.1:7000/0")


def test_no_server_message_says_what_to_do(state_dir: Path) -> None:
    with pytest.raises(NoServerError) as caught:
        resolve_redis_url()
    message = str(caught.value)
    for hint in ("hq-sweep server start", "--redis", "hq-sweep run", str(state_dir)):
        assert hint in message


def test_dead_recorded_server(state_dir: Path, alive: dict[str, bool]) -> None:
    alive["alive"] = False
    write_connection_file(_info(state_dir, pid=424242))
    with pytest.raises(NoServerError, match="is not running") as caught:
        resolve_redis_url()
    assert SECRET not in str(caught.value)
    assert "redis://:***@127.0.0.1:6390/0" in str(caught.value)


def test_garbage_connection_file(state_dir: Path) -> None:
    state_dir.mkdir(parents=True)
    connection_file_path(state_dir).write_text("{not json")
    with pytest.raises(ConnectionFileError):
        read_connection_file(state_dir)
    with pytest.raises(NoServerError, match="not a valid connection file"):
        resolve_redis_url()
    connection_file_path(state_dir).write_text(json.dumps({"host": "h", "port": "6379"}))
    with pytest.raises(ConnectionFileError, match="port"):
        read_connection_file(state_dir)


def test_bad_urls_are_rejected_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BadRedisUrlError) as caught:
        resolve_redis_url(f"http://:{SECRET}@host/")
    assert SECRET not in str(caught.value)
    monkeypatch.setenv("HQ_SWEEP_REDIS_URL", "localhost:6379")
    with pytest.raises(BadRedisUrlError, match="HQ_SWEEP_REDIS_URL"):
        resolve_redis_url()


def test_connection_file_round_trip_and_mode(state_dir: Path) -> None:
    assert read_connection_file(state_dir) is None
    info = _info(state_dir, bind="0.0.0.0", node="node7", started_at="2026-01-01T00:00:00+00:00")
    path = write_connection_file(info)
    assert path == connection_file_path(state_dir)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert read_connection_file(state_dir) == info
    assert json.loads(path.read_text())["url"] == info.url
    assert list(state_dir.iterdir()) == [path]  # no temporary file left behind


def test_remove_connection_file_only_if(state_dir: Path) -> None:
    info = _info(state_dir)
    write_connection_file(info)
    remove_connection_file(state_dir, only_if=_info(state_dir, pid=1))
    assert read_connection_file(state_dir) == info
    remove_connection_file(state_dir, only_if=info)
    assert read_connection_file(state_dir) is None
    remove_connection_file(state_dir)  # idempotent


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())
    assert not pid_alive(0)
    assert not pid_alive(-1)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert not pid_alive(child.pid)


def test_pid_alive_reaps_our_zombie() -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not yet reaped
    assert not pid_alive(child.pid)
    child.poll()


def test_server_alive_false_without_server(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert not server_alive(_info(tmp_path, port=port))  # our pid lives, but no server
    assert not server_alive(_info(tmp_path, port=port, pid=0))


def test_connect_policy() -> None:
    client = connect("redis://:pw@127.0.0.1:6390/0", client_name="worker-1")
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["decode_responses"] is False
    assert kwargs["password"] == "pw"
    assert kwargs["socket_keepalive"] is True
    assert kwargs["health_check_interval"] > 0
    assert kwargs["client_name"] == "worker-1"
    retry = kwargs["retry"]
    assert 1 <= retry.get_retries() <= 5
    assert redis.exceptions.ConnectionError in retry._supported_errors
    assert redis.exceptions.TimeoutError in retry._supported_errors
    client.close()


def test_connect_accepts_unix_sockets(tmp_path: Path) -> None:
    client = connect(f"unix://{tmp_path}/absent.sock?db=0")
    with pytest.raises(RedisUnavailable):
        client.ping()  # fails to connect, not to construct the connection
    client.close()


def test_retry_gives_up_at_once_on_a_refused_password() -> None:
    retry = connect("redis://:pw@127.0.0.1:6390/0").connection_pool.connection_kwargs["retry"]
    calls: list[int] = []

    def refused() -> None:
        calls.append(1)
        raise redis.exceptions.AuthenticationError("WRONGPASS")

    with pytest.raises(redis.exceptions.AuthenticationError):
        retry.call_with_retry(refused, lambda error: None)
    assert len(calls) == 1

    def dropped() -> None:
        calls.append(1)
        raise redis.exceptions.ConnectionError("connection reset")

    calls.clear()
    with pytest.raises(redis.exceptions.ConnectionError):
        retry.call_with_retry(dropped, lambda error: None)
    assert len(calls) == retry.get_retries() + 1


def test_repr_hides_the_password(tmp_path: Path) -> None:
    assert SECRET not in repr(_info(tmp_path))
