"""The transport's boundary against a real server: only the project's errors come out."""

from __future__ import annotations

import pytest

from hq_sweep.errors import RedisRefused, TransportError
from hq_sweep.queue.admin import auth_ping, server_details
from hq_sweep.queue.client import connect
from hq_sweep.queue.registry import SweepRegistry
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.server.embedded import EmbeddedServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


def test_a_failed_command_raises_a_transport_error(redis_url: str) -> None:
    connection = connect(redis_url)
    queue = SweepQueue(connection, SweepRegistry(connection).create("t", "{}", "h", "/"))
    connection.set(queue.keys.part("counts"), "not a hash")  # WRONGTYPE for HGETALL
    with pytest.raises(TransportError, match="WRONGTYPE"):
        queue.meta.counts()
    pipe = connection.pipeline(transaction=False)
    pipe.hgetall(queue.keys.part("counts"))
    with pytest.raises(TransportError, match="WRONGTYPE"):
        pipe.execute()


def test_scripts_are_sent_again_to_a_server_that_forgot_them(
    redis_url: str, redis_server: EmbeddedServer
) -> None:
    connection = connect(redis_url)
    queue = SweepQueue(connection, SweepRegistry(connection).create("t", "{}", "h", "/"))
    assert queue.lock.acquire("me", 10_000)
    # What a restarted server without the scripts looks like (the sweep user may not flush).
    connect(redis_server.admin_url).script_flush()
    assert queue.lock.renew("me", 10_000) and not queue.lock.renew("other", 10_000)


def test_server_questions_go_through_the_transport(redis_server: EmbeddedServer) -> None:
    info = redis_server.info
    assert auth_ping(info.probe_host(), info.port, info.password, user=info.user) == "PONG"
    assert auth_ping(info.probe_host(), info.port, "wrong").startswith("WRONGPASS")
    assert server_details(redis_server.admin_url)["keys"] >= 0
    wrong = redis_server.url.replace(redis_server.password, "wrong")
    with pytest.raises(RedisRefused):
        connect(wrong).ping()
