"""enqueue --detach: returns once the new controller holds the sweep, or says why it can't."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import fakeredis
import pytest

from hq_sweep.cli.detached import spawn_controller
from hq_sweep.env import REDIS_URL
from hq_sweep.errors import HqSweepError
from hq_sweep.queue.client import Client
from hq_sweep.queue.lock_token import controller_token, describe_holder, holds
from hq_sweep.queue.sweep import SweepQueue

UNREACHABLE = {REDIS_URL: "redis://127.0.0.1:1/0"}


def test_a_token_names_its_process() -> None:
    token = controller_token("abc")
    assert holds(token, os.getpid())
    assert not holds(token, os.getpid() + 1)
    assert not holds(None, os.getpid())
    assert describe_holder(token) == f"{socket.gethostname()} pid {os.getpid()}"
    assert describe_holder("0123abcd") == "token 0123abcd"  # an older controller's
    assert describe_holder(None) is None


@pytest.mark.timeout(30)
def test_a_controller_that_dies_at_start_is_an_error_with_its_log(tmp_path: Path) -> None:
    queue = SweepQueue(Client(connection_pool=fakeredis.FakeRedis().connection_pool), "gone")
    with pytest.raises(HqSweepError, match=r"exited with code 1(.|\n)*cannot reach Redis"):
        spawn_controller(queue, UNREACHABLE, 1.0, tmp_path, timeout_s=20)
    assert (tmp_path / "controller.pid").read_text().strip().isdigit()


@pytest.mark.timeout(30)
def test_another_holder_means_standing_by(tmp_path: Path) -> None:
    queue = SweepQueue(Client(connection_pool=fakeredis.FakeRedis().connection_pool), "held")
    assert queue.lock.acquire(controller_token("other"), 60_000)
    started = spawn_controller(queue, UNREACHABLE, 1.0, tmp_path, timeout_s=20)
    assert started.standing_by and started.log == tmp_path / "controller.log"
