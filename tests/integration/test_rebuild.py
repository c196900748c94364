"""A restarting controller rebuilds its study from Redis without losing the sweep's lock."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

import pytest

from hq_sweep.controller import rebuild as study_rebuild
from hq_sweep.controller.loop import Controller, ControllerOptions
from hq_sweep.controller.strategy import optuna_ask_tell
from hq_sweep.controller.strategy._base import Best, Decisions, History, Stop, Strategy
from hq_sweep.messages import Report, TrialOutcome, TrialState, TrialTask
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

    def rebuild(*args: Any) -> study_rebuild.Rebuilt:
        try:
            return study_rebuild.rebuild_study(*args)
        finally:
            rebuilt.set()

    monkeypatch.setattr(study_rebuild, "_load_record", slow_load)
    monkeypatch.setattr(study_rebuild, "_RENEW_EVERY", 10)
    monkeypatch.setattr(optuna_ask_tell, "rebuild_study", rebuild)
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
    assert attempts > 20 and restarted.strategy.told == TRIALS
    assert queue.meta.read()["state"] == "finished"


class Listed:
    """A strategy that runs a fixed list of x values, in order: all the loop needs."""

    wants_reports = False
    ask_ahead: int | None = None

    def __init__(self, xs: list[float]) -> None:
        self.xs = xs
        self.asked: dict[int, float] = {}
        self.outcomes: dict[int, TrialOutcome] = {}
        self.restored_from = -1

    @property
    def pending(self) -> Collection[int]:
        return self.asked.keys()

    @property
    def told(self) -> int:
        return len(self.outcomes)

    @property
    def best(self) -> Best | None:
        done = [(o.values[0], n) for n, o in self.outcomes.items() if o.values]
        return Best(*min(done)) if done else None

    @property
    def stop(self) -> Stop | None:
        return Stop("list done") if len(self.asked) + len(self.outcomes) >= len(self.xs) else None

    def held(self) -> int:
        return len(self.asked) + len(self.outcomes)

    def restore(self, history: History, keep_alive: Callable[[], None]) -> None:
        self.restored_from = len(history.records)
        for record in history.records:
            outcome = record.outcome()
            if outcome is not None:
                self.outcomes[record.number] = outcome
            elif record.params is not None:
                self.asked[record.number] = record.params["x"]

    def ask(self, numbers: range) -> list[TrialTask]:
        tasks = [TrialTask(n, {"x": self.xs[n]}) for n in numbers if n < len(self.xs)]
        self.asked.update((t.number, t.params["x"]) for t in tasks)
        return tasks

    def tell(self, outcome: TrialOutcome) -> bool:
        if self.asked.pop(outcome.number, None) is None:
            return False
        self.outcomes[outcome.number] = outcome
        return True

    def decide(self, reports: Sequence[Report]) -> Decisions:
        return Decisions({}, {})


_CHECKED: Strategy = Listed([])  # mypy checks that Listed implements the Protocol


def _run_claims(queue: SweepQueue, limit: int) -> None:
    claims = queue.trials.claim("w", limit, lease_s=30)
    queue.trials.finish([Finish(TrialOutcome(c.task.number, c.attempt, TrialState.COMPLETE,
                                             [c.task.params["x"]]), time.time()) for c in claims])


@pytest.mark.timeout(60)
def test_the_loop_drives_any_strategy_and_a_restart_restores_it(redis_url: str) -> None:
    connection = connect(redis_url)
    queue = SweepQueue(connection, SweepRegistry(connection).create("listed", "{}", "h", "/"))
    xs = [0.5, 0.25, 0.75, 0.125, 0.9]
    first = Controller(queue, SPEC, ControllerOptions(wait_s=0.0), strategy=Listed(xs))
    first.step()  # asks all five ahead
    _run_claims(queue, 3)
    first.step()  # told three; then the controller "dies" with two trials pending
    assert first.strategy.told == 3 and sorted(first.strategy.pending) == [3, 4]
    assert queue.meta.read()["best"] == '{"number":1,"value":0.25,"params":{"x":0.25}}'
    listed = Listed(xs)
    restarted = Controller(queue, SPEC, ControllerOptions(wait_s=0.0), strategy=listed)
    thread = threading.Thread(target=restarted.run)
    thread.start()
    poll(lambda: listed.restored_from == 5, 10, "the restore")
    _run_claims(queue, 2)
    thread.join(10)
    assert sorted(listed.outcomes) == [0, 1, 2, 3, 4] and not listed.pending
    meta = queue.meta.read()
    assert (meta["state"], meta["finished_reason"], meta["told"], meta["study_trials"]) == (
        "finished", "list done", "5", "5")
    assert meta["best"] == '{"number":3,"value":0.125,"params":{"x":0.125}}'


@pytest.mark.timeout(30)
def test_a_failure_whose_reap_reply_was_lost_is_read_from_its_record(redis_url: str) -> None:
    """reap.lua hands the trials it fails to its caller alone; were that reply lost (and the
    client's retry found nothing left to reap), the records still say failed: once nothing
    is queued or running, the controller reads the records of what it still waits for."""
    connection = connect(redis_url)
    queue = SweepQueue(connection, SweepRegistry(connection).create("lost", "{}", "h", "/"))
    spec = parse_spec({"name": "lost", "method": "random", "run_cap": 2, "retries": 0,
                       "parameters": {"x": {"min": 0.0, "max": 1.0}}})
    controller = Controller(queue, spec, ControllerOptions(wait_s=0.0))
    controller.step()  # asks both
    first, second = queue.trials.claim("w", 2, lease_s=0.001)
    queue.trials.renew("w", [(first.task.number, first.attempt)], lease_s=30)
    poll(lambda: bool(queue.trials.reap(attempts_allowed=1).failed), 5, "the lease to expire")
    queue.trials.finish([Finish(TrialOutcome(first.task.number, first.attempt,
                                             TrialState.COMPLETE, [0.5]), time.time())])
    controller.step()  # told the complete one; the failed one never reached it
    assert list(controller.strategy.pending) == [second.task.number]
    controller._nudge()
    assert not controller.strategy.pending and controller.strategy.told == 2
    assert controller._done() and controller._finish() == "run_cap"
