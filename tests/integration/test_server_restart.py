"""A server that died comes back where its clients look for it (issue 14, first part): the
same port and password, its data from the AOF; found by AUTH + PING, not by its pid. Real
valkey-server processes, real SIGKILL."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from hq_sweep.queue.client import connect
from hq_sweep.server.connection import live_server, pid_alive, read_connection_file
from hq_sweep.server.process import (
    CONF_NAME,
    ServerInfo,
    ServerStartError,
    find_server_binary,
    server_alive,
    start_server,
    stop_server,
)
from tests.integration.helpers import poll

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


def _killed_with_data(state_dir: Path) -> ServerInfo:
    """A server in `state_dir` holding a key that reached its AOF, then SIGKILLed."""
    info = start_server(state_dir)
    connect(info.url).set("hqs:kept", "yes")
    client = connect(info.admin_url)  # the sweep user may not rewrite the AOF
    client.execute_command("BGREWRITEAOF")  # on disk now, whatever appendfsync says
    poll(lambda: int(client.info("persistence")["aof_rewrite_in_progress"]) == 0, 10,
         "the AOF rewrite")
    client.close()
    os.kill(info.pid, signal.SIGKILL)
    poll(lambda: not pid_alive(info.pid), 10, "the server to die")
    return info


def test_a_server_started_after_one_died_keeps_its_port_password_and_data(
        tmp_path: Path) -> None:
    dead = _killed_with_data(tmp_path / "s")
    client = connect(dead.url)  # a client that held the old URL all along
    fresh = start_server(tmp_path / "s")
    try:
        assert (fresh.port, fresh.password) == (dead.port, dead.password)
        assert fresh.admin_secret == dead.admin_secret and fresh.user == dead.user
        assert fresh.pid != dead.pid
        assert client.get("hqs:kept") == b"yes"
    finally:
        client.close()
        stop_server(fresh)


def test_new_password_and_a_taken_port(tmp_path: Path) -> None:
    dead = _killed_with_data(tmp_path / "s")
    with socket.socket() as squatter:  # someone took the port meanwhile
        squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        squatter.bind(("127.0.0.1", dead.port))
        squatter.listen()
        with pytest.raises(ServerStartError, match=f"port {dead.port}.* is taken now"):
            start_server(tmp_path / "s")
    fresh = start_server(tmp_path / "s", new_password=True)
    try:
        assert fresh.port == dead.port and fresh.password != dead.password
        assert connect(fresh.url).get("hqs:kept") == b"yes"
    finally:
        stop_server(fresh)


def test_a_server_restarted_outside_hq_sweep_is_found_and_adopted(tmp_path: Path) -> None:
    """A supervisor (or a person) restarts the server from its own config: its pid is new,
    and it is the same server: found, its pid recorded, and `stop` stops it."""
    dead = _killed_with_data(tmp_path / "s")
    state_dir = dead.state_dir
    restarted = subprocess.Popen([str(find_server_binary()), str(state_dir / CONF_NAME)],
                                 cwd=state_dir, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
    try:
        poll(lambda: server_alive(dead), 10, "the restarted server to answer")
        found = live_server(state_dir)
        assert found is not None and found.pid == restarted.pid
        recorded = read_connection_file(state_dir)
        assert recorded is not None and recorded.pid == restarted.pid
        assert connect(found.url).get("hqs:kept") == b"yes"
        stop_server(found)
        assert restarted.wait(10) == 0
    finally:
        if restarted.poll() is None:
            restarted.kill()
            restarted.wait(10)
