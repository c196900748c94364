"""The queue's boundary: redis-py's errors become the project's, and scripts load once."""

from __future__ import annotations

import socket

import pytest
import redis

from hq_sweep.errors import HqSweepError, RedisRefused, RedisUnavailable, TransportError
from hq_sweep.queue.client import connect, for_rq, translate
from hq_sweep.queue.redaction import redact_text
from hq_sweep.queue.scripts import NAMES, script

pytestmark = pytest.mark.timeout(20)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_translation_sorts_redis_errors_into_the_project_tree() -> None:
    assert isinstance(translate(redis.exceptions.AuthenticationError("WRONGPASS")), RedisRefused)
    assert isinstance(translate(redis.exceptions.BusyLoadingError("LOADING")), RedisUnavailable)
    assert isinstance(translate(redis.exceptions.TimeoutError("slow")), RedisUnavailable)
    other = translate(redis.exceptions.ResponseError("WRONGTYPE"))
    assert type(other) is TransportError and isinstance(other, HqSweepError)


def test_a_password_in_an_error_message_is_redacted() -> None:
    error = translate(redis.exceptions.ConnectionError("redis://:s3cret@host:1/0 refused"))
    assert "s3cret" not in str(error) and "***" in str(error)


def test_commands_and_pipelines_raise_the_projects_errors() -> None:
    client = connect(f"redis://:pw@127.0.0.1:{_closed_port()}/0", socket_timeout=1.0)
    with pytest.raises(RedisUnavailable):
        client.get("k")
    pipe = client.pipeline(transaction=False)
    pipe.get("k")
    with pytest.raises(RedisUnavailable):
        pipe.execute()
    with pytest.raises(RedisUnavailable):
        script("lock_renew").run(client, ["k"], ["token", 1000])
    # rq gets redis-py's own errors, which it knows how to handle.
    with pytest.raises(redis.exceptions.ConnectionError):
        for_rq(client).get("k")


def test_each_script_is_read_once_per_process() -> None:
    for name in NAMES:
        assert script(name) is script(name)
        text = script(name).text
        assert text.startswith("-- _prelude.lua") and f"\n-- {name}.lua: " in text
    with pytest.raises(KeyError):
        script("nope")


@pytest.mark.parametrize(("text", "shown"), [
    ("redis:/:pw1@127.0.0.1:1/0: cannot read the sweep file",  # a URL made a path
     "redis:/:***@127.0.0.1:1/0: cannot read the sweep file"),
    ("at redis://hqsweep:pw2@h:1/0 and rediss://u:pw3@x/0?password=pw4",
     "at redis://hqsweep:***@h:1/0 and rediss://u:***@x/0?password=***"),
    ("/tmp/a@b and redis://host:6379/0", "/tmp/a@b and redis://host:6379/0"),
])
def test_a_text_shows_no_password_of_any_url_in_it(text: str, shown: str) -> None:
    assert redact_text(text) == shown
