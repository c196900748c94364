"""The queue's Lua scripts against a real server: claims, fencing, counts, quarantine."""

from __future__ import annotations

import time

import pytest

from hq_sweep.messages import Report, TrialOutcome, TrialState, TrialTask
from hq_sweep.queue.client import connect
from hq_sweep.queue.registry import SweepRegistry
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.queue.trials import Finish
from tests.integration.helpers import poll

pytestmark = pytest.mark.integration


def _queue(redis_url: str, n: int = 3) -> tuple[SweepQueue, list[TrialTask]]:
    connection = connect(redis_url)
    sweep = SweepRegistry(connection).create("q", "{}", "h", "/tmp")
    queue = SweepQueue(connection, sweep)
    tasks = [TrialTask(i, {"x": i}) for i in range(n)]
    queue.trials.enqueue([tasks], next_number=n)
    return queue, tasks


def _finish(number: int, attempt: int, value: float = 1.0) -> Finish:
    outcome = TrialOutcome(number, attempt, TrialState.COMPLETE, [value], worker="w")
    return Finish(outcome, ended_at=time.time())


def test_sweep_ids_are_unique(redis_url: str) -> None:
    registry = SweepRegistry(connect(redis_url))
    assert [registry.create("s", "{}", "h", "/") for _ in range(3)] == ["s", "s-2", "s-3"]
    assert registry.latest() == "s-3" and registry.list() == ["s", "s-2", "s-3"]


def test_claim_finish_and_counts(redis_url: str) -> None:
    queue, _ = _queue(redis_url)
    assert queue.meta.counts() == {"queued": 3}
    claims = queue.trials.claim("w", 10, lease_s=30)
    assert [(c.task.number, c.attempt, c.task.params) for c in claims] == [
        (0, 1, {"x": 0}), (1, 1, {"x": 1}), (2, 1, {"x": 2})]
    assert queue.trials.claim("other", 10, lease_s=30) == []  # nobody takes a running trial
    assert queue.trials.finish([_finish(0, 1), _finish(1, 1)]) == [True, True]
    assert queue.meta.counts() == {"queued": 0, "running": 1, "complete": 2}
    assert [o.number for o in queue.reports.pop_news(10, 0, with_reports=False)[0]] == [0, 1]


def test_stale_and_repeated_results_are_fenced_off(redis_url: str) -> None:
    queue, _ = _queue(redis_url, 1)
    queue.trials.claim("w", 1, lease_s=30)
    assert queue.trials.finish([_finish(0, 2)]) == [False]  # an attempt that never was
    assert queue.trials.finish([_finish(0, 1)]) == [True]
    assert queue.trials.finish([_finish(0, 1)]) == [False]  # told once only
    assert len(queue.reports.pop_news(10, 0, with_reports=False)[0]) == 1
    assert queue.meta.counts()["complete"] == 1


def test_report_records_value_and_returns_prune_decision(redis_url: str) -> None:
    queue, _ = _queue(redis_url, 1)
    queue.trials.claim("w", 1, lease_s=30)
    assert queue.reports.report(Report(0, 1, 0, 0.9583333333333334)) == 0
    queue.reports.decide([0], {})
    assert queue.reports.report(Report(0, 1, 1, 0.5)) == 1
    assert queue.reports.report(Report(0, 7, 2, 0.5)) == -1  # stale attempt
    assert queue.trials.intermediate_values([0]) == {0: {0: 0.9583333333333334, 1: 0.5}}
    assert [r.step for r in queue.reports.pop_news(10, 0, with_reports=True)[1]] == [0, 1]


def test_cancel_only_touches_queued_trials(redis_url: str) -> None:
    queue, _ = _queue(redis_url, 3)
    queue.trials.claim("w", 1, lease_s=30)
    assert queue.trials.cancel([0, 1, 2]) == 2
    assert queue.meta.counts() == {"queued": 0, "running": 1, "cancelled": 2}
    assert queue.trials.claim("w", 10, lease_s=30) == []


def test_garbage_in_results_is_quarantined(redis_url: str) -> None:
    queue, _ = _queue(redis_url, 1)
    queue.connection.rpush(f"{queue.keys.meta}:results", b"\x80garbage", b'{"n": 1}')
    assert queue.reports.pop_news(10, 0, with_reports=False)[0] == []
    assert queue.meta.quarantined() == 2


def test_controller_lock_is_exclusive_and_renewable(redis_url: str) -> None:
    queue, _ = _queue(redis_url, 1)
    assert queue.lock.acquire("a", 5000)
    assert not queue.lock.acquire("b", 5000)
    assert queue.lock.renew("a", 5000) and not queue.lock.renew("b", 5000)
    queue.lock.release("b")  # not the holder: no effect
    assert not queue.lock.acquire("b", 5000)
    queue.lock.release("a")
    assert queue.lock.acquire("b", 5000)


def test_claim_takes_at_most_the_batch_in_order(redis_url: str) -> None:
    queue, _ = _queue(redis_url, 5)
    assert [c.task.number for c in queue.trials.claim("w", 2, lease_s=30)] == [0, 1]
    assert [c.task.number for c in queue.trials.claim("v", 2, lease_s=30)] == [2, 3]
    assert queue.trials.waiting_jobs() == 1  # one wake-up job for the one batch enqueued


def test_expired_leases_are_requeued_then_failed_past_retries(redis_url: str) -> None:
    queue, _ = _queue(redis_url, 1)
    [claim] = queue.trials.claim("w", 1, lease_s=0.001)
    assert claim.attempt == 1
    poll(lambda: queue.trials.reap(attempts_allowed=2) == 1, 5, "the first lease to expire")
    [claim] = queue.trials.claim("w", 1, lease_s=0.001)
    assert claim.attempt == 2
    poll(lambda: queue.trials.reap(attempts_allowed=2) == 0
         and queue.trials.records_for([0])[0]["state"] == "failed", 5, "the second lease to expire")
    record = queue.trials.records_for([0])[0]
    assert record["state"] == "failed" and "lease expired" in record["reason"]
    assert queue.meta.counts()["requeued"] == 1
    assert queue.meta.failure_kinds() == {"lease expired": 1}
    outcomes = queue.reports.pop_news(10, 0, with_reports=False)[0]
    assert [o.state.value for o in outcomes] == ["failed"]
    # the lost worker's late result is fenced:
    assert queue.trials.finish([_finish(0, 2)]) == [False]


def test_release_requeues_without_using_an_attempt(redis_url: str) -> None:
    queue, _ = _queue(redis_url, 2)
    claims = queue.trials.claim("w", 2, lease_s=30)
    held = [(c.task.number, c.attempt) for c in claims]
    assert queue.trials.release("other", held) == [False, False]  # only the holder may release
    assert queue.trials.release("w", held) == [True, True]
    again = queue.trials.claim("v", 2, lease_s=30)
    assert [(c.task.number, c.attempt) for c in again] == [(1, 2), (0, 2)]
    assert queue.trials.finish([_finish(0, 1)]) == [False]  # fencing stays monotonic


def test_renew_keeps_only_our_leases(redis_url: str) -> None:
    queue, _ = _queue(redis_url, 1)
    [claim] = queue.trials.claim("w", 1, lease_s=0.5)
    assert queue.trials.renew("w", [(0, claim.attempt)], lease_s=30) == [True]
    assert queue.trials.renew("x", [(0, claim.attempt)], lease_s=30) == [False]
    assert queue.trials.renew("w", [(0, claim.attempt + 1)], lease_s=30) == [False]

