"""Shared fixtures: one real, password-protected server per test session.

`redis_server` (session): an EmbeddedServer in a temporary directory.
`redis_url` (function): its URL, after FLUSHALL, so every test starts from an empty keyspace.

Every test also runs with `HQ_SWEEP_STATE_DIR` pointing at its own temporary directory and
without `HQ_SWEEP_REDIS_URL`, so no test can reach (or stop) a developer's real server; a
detached server a test leaves behind in that directory is stopped afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hq_sweep.queue.client import connect
from hq_sweep.server.connection import (
    ENV_REDIS_URL,
    ENV_STATE_DIR,
    ConnectionFileError,
    read_connection_file,
)
from hq_sweep.server.embedded import EmbeddedServer
from hq_sweep.server.process import server_alive, stop_server


@pytest.fixture(autouse=True)
def _isolated_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    state_dir = tmp_path / "hq-sweep-state"
    monkeypatch.setenv(ENV_STATE_DIR, str(state_dir))
    monkeypatch.delenv(ENV_REDIS_URL, raising=False)
    for named in ("HQ_SWEEP_REDIS_URL_FILE", "HQ_SWEEP_CONNECTION_FILE"):  # the same, by a file
        monkeypatch.delenv(named, raising=False)
    yield state_dir
    # Servers a test started (`server start`, in this state dir or one of its own) stop
    # with it, also when it failed half-way.
    for record in tmp_path.rglob("connection.json"):
        try:
            leftover = read_connection_file(record.parent)
        except ConnectionFileError:
            continue
        if leftover is not None and server_alive(leftover):
            stop_server(leftover)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedServer]:
    with EmbeddedServer(tmp_path_factory.mktemp("redis-server")) as server:
        yield server


@pytest.fixture
def redis_url(redis_server: EmbeddedServer) -> Iterator[str]:
    # A test may have stopped or killed the shared server: bring it back (same port/password).
    if not redis_server.running:
        redis_server.start()
    client = connect(redis_server.admin_url)  # the sweep user (`url`) may not FLUSHALL
    try:
        client.flushall()
    finally:
        client.close()
    yield redis_server.url
