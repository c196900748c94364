"""A restarting controller rebuilds its study from Redis without losing the sweep's lock."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from hq_sweep.controller import loop as controller_module
from hq_sweep.controller import rebuild as study_rebuild
from hq_sweep.controller.loop import Controller, ControllerOptions
from hq_sweep.messages import TrialOutcome, TrialState
from hq_sweep.queue.client import connect
from hq_sweep.queue.registry import SweepRegistry
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.queue.trials import Finish
from hq_sweep.spec.sweep import parse_spec
from tests.integration.helpers import poll

pytestmark = pytest.mark.integration
TRIALS = 200
SPEC = parse_spec({"name": "big", "method": "random", "run_cap": TRIALS,
                   "parameters": {"x": {"min": 0.0, "max": 1.0}}})


def finished_sweep(redis_url: str) -> SweepQueue:
    """A sweep whose TRIALS trials have all finished, run through a controller."""
    connection = connect(redis_url)
    queue = SweepQueue(connection, SweepRegistry(connection).create("big", "{}", "h", "/"))
    first = Controller(queue, SPEC, ControllerOptions(wait_s=0.0))
    first.next_number = 0
    while queue.meta.counts().get("complete", 0) < TRIALS:
        first.step()
        claims = queue.trials.claim("w", 50, lease_s=30)
        queue.trials.finish([Finish(TrialOutcome(c.task.number, c.attempt, TrialState.COMPLETE,
                                          [c.task.params["x"]]), time.time()) for c in claims])
    return queue


@pytest.mark.timeout(60)
def test_a_rebuild_longer_than_the_lease_keeps_the_lock(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    queue = finished_sweep(redis_url)
    load = study_rebuild._load_record

    def slow_load(*args: Any) -> None:  # as if the sweep were far bigger: 1 s in all
        time.sleep(1.0 / TRIALS)
        load(*args)

    rebuilt = threading.Event()

    def rebuild(controller: Controller) -> int:
        try:
            return study_rebuild.rebuild_study(controller)
        finally:
            rebuilt.set()

    monkeypatch.setattr(study_rebuild, "_load_record", slow_load)
    monkeypatch.setattr(study_rebuild, "_RENEW_EVERY", 10)
    monkeypatch.setattr(controller_module, "rebuild_study", rebuild)
    restarted = Controller(queue, SPEC, ControllerOptions(lease_ms=300, wait_s=0.0))
    thread = threading.Thread(target=restarted.run)
    thread.start()
    poll(lambda: queue.lock.holder() == restarted.token or rebuilt.is_set(), 10, "the lock")
    attempts = 0
    while not rebuilt.is_set():  # a standby trying all along never gets in
        assert not queue.lock.acquire("standby", 300), "the lock lapsed during the rebuild"
        attempts += 1
        rebuilt.wait(0.02)
    thread.join(10)
    assert attempts > 20 and restarted.told == TRIALS
    assert queue.meta.read()["state"] == "finished"
