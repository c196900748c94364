"""A server that had to move is followed (issue 14): the server of a sweep run as separate
pieces (a detached controller, `start-workers`, `monitor`) is SIGKILLed and started again on
another port; each piece re-reads the connection file once the server has been gone a while,
says "server moved to ..." and carries on. Nothing is restarted, and exactly run_cap trials end.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hq_sweep.errors import RedisUnavailable
from hq_sweep.queue.client import Client, connect, for_rq, redact
from hq_sweep.queue.repoint import REREAD_AFTER_S
from hq_sweep.queue.retry import patiently
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.server.connection import ServerInfo, read_connection_file, server_alive
from hq_sweep.server.embedded import EmbeddedServer
from tests.integration.helpers import hq, poll, process_gone, start_detached_controller, write_sweep
from tests.integration.test_chaos import CHAOS, assert_exact
from tests.integration.test_server_crash import kill_server, reaped, start_server_cli, state_env

pytestmark = pytest.mark.integration
RUN_CAP = 400


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_moved(env: dict[str, str], old: ServerInfo) -> ServerInfo:
    """`hq-sweep server start --port P` in the same state dir: same data, another address."""
    port = _free_port()
    started = hq(["server", "start", "--port", str(port)], env, timeout=60)
    assert started.returncode == 0, started.stderr
    info = read_connection_file(old.state_dir)
    assert info is not None and server_alive(info) and info.port == port != old.port
    return info


def _children(pid: int) -> set[int]:
    return {int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


@pytest.mark.timeout(180)
def test_workers_controller_and_monitor_follow_a_server_that_moved(tmp_path: Path) -> None:
    state = tmp_path / "state"
    env = state_env(state, HQ_SWEEP_TEST_PAUSE="0.01")
    info = start_server_cli(env)
    spec = write_sweep(tmp_path, {"name": "moves", "method": "random", "run_cap": RUN_CAP,
                                  "lease": 3, "worker": {"module": CHAOS, "objective": "short"},
                                  "parameters": {"x": {"min": 0.0, "max": 1.0}}})
    controller = start_detached_controller(spec, "moves", env)
    out = tmp_path / "pieces.log"
    with out.open("ab") as log:
        workers, monitor = (subprocess.Popen([sys.executable, "-m", "hq_sweep", *args], env=env,
                                             stdout=log, stderr=log)
                            for args in (["start-workers", "--workers", "2", "--sweep", "moves"],
                                         ["monitor", "--sweep", "moves", "--progress-every", "1"]))
    queue = SweepQueue(connect(info.url), "moves")
    with reaped(controller, workers.pid, monitor.pid):
        poll(lambda: queue.meta.counts().get("complete", 0) >= 60, 90, "60 trials", out.read_text)
        before = _children(workers.pid)
        kill_server(info)
        moved = _start_moved(env, info)
        queue = SweepQueue(connect(moved.url), "moves")
        poll(lambda: queue.meta.counts().get("complete", 0) >= 200, 90,
             "trials on the moved server", out.read_text)
        assert _children(workers.pid) == before  # the same workers: none was restarted
        assert not process_gone(controller)
        assert workers.wait(90) == 0, out.read_text()[-3000:]
        assert monitor.wait(30) == 0, out.read_text()[-3000:]
        poll(lambda: process_gone(controller), 30, "the controller to end with the sweep")
    assert_exact(queue, RUN_CAP)
    where = f"server moved to {redact(moved.url)}"  # the URL as the file has it, hidden
    controller_log = (state / "logs" / "moves" / "controller.log").read_text()
    pieces = out.read_text()
    assert where in controller_log, controller_log[-3000:]
    assert pieces.count(where) >= 3, pieces[-3000:]  # both workers and the monitor
    assert "restarting" not in pieces
    assert moved.password not in pieces + controller_log


def _follower(url: str, where: list[str]) -> Client:
    """A client whose file says `where[0]`, read again as connect's `reread` would."""
    return connect(url, reread=lambda: where[0])


@pytest.mark.timeout(60)
def test_a_client_and_rq_on_its_pool_follow_a_new_address(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with EmbeddedServer(tmp_path / "a") as first:
        where = [first.url]
        client = _follower(first.url, where)
        client.set("hqs:moves-test", "v")  # a key the sweep user may write
        rq_client = for_rq(client)
        first.kill()
        with EmbeddedServer(tmp_path / "b") as second:
            assert second.port != first.port
            where[0] = second.url
            started = time.monotonic()
            with caplog.at_level(logging.WARNING, "hq_sweep"):
                assert patiently(client.ping, "test", patience_s=30) is True
            assert time.monotonic() - started >= REREAD_AFTER_S * 0.9  # not on the first blip
            assert rq_client.ping() is True  # rq's client shares the pool: it moved too
            moved = [r.getMessage() for r in caplog.records if "server moved" in r.getMessage()]
            assert moved == [f"server moved to {redact(second.url)}"]
            assert client.connection_pool.connection_kwargs["port"] == second.port


@pytest.mark.timeout(60)
def test_a_new_password_on_the_same_port_is_followed_at_once(tmp_path: Path) -> None:
    with EmbeddedServer(tmp_path / "a") as first:
        where = [first.url]
        client = _follower(first.url, where)
        assert client.ping() is True
        first.kill()
    with EmbeddedServer(tmp_path / "b", port=first.port) as second:
        assert second.password != first.password
        where[0] = second.url
        started = time.monotonic()
        assert patiently(client.ping, "test", patience_s=30) is True
        assert time.monotonic() - started < REREAD_AFTER_S  # a refusal reads the file at once


@pytest.mark.timeout(30)
def test_a_client_given_the_url_itself_never_moves(tmp_path: Path) -> None:
    with EmbeddedServer(tmp_path / "a") as first:
        client = connect(first.url)  # no reread: nothing to follow
        first.kill()
        with pytest.raises(RedisUnavailable):
            patiently(client.ping, "test", patience_s=REREAD_AFTER_S + 2)
