"""The queue's Lua scripts against a real server: claims, fencing, counts, quarantine."""

from __future__ import annotations

import time

import pytest

from hq_sweep.messages import Report, TrialOutcome, TrialState, TrialTask
from hq_sweep.queue.sweep_queue import Finish, SweepQueue, SweepRegistry
from hq_sweep.server.connection import connect
from tests.integration.helpers import poll

pytestmark = pytest.mark.integration


def _queue(redis_url: str, n: int = 3) -> tuple[SweepQueue, list[TrialTask]]:
    connection = connect(redis_url)
    sweep = SweepRegistry(connection).create("q", "{}", "h", "/tmp")
    queue = SweepQueue(connection, sweep)
    tasks = [TrialTask(i, {"x": i}) for i in range(n)]
    queue.enqueue([tasks], next_number=n)
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
    assert queue.counts() == {"queued": 3}
    claims = queue.claim("w", 10, lease_s=30)
    assert [(c.task.number, c.attempt, c.task.params) for c in claims] == [
        (0, 1, {"x": 0}), (1, 1, {"x": 1}), (2, 1, {"x": 2})]
    assert queue.claim("other", 10, lease_s=30) == []  # nobody takes a running trial
    assert queue.finish([_finish(0, 1), _finish(1, 1)]) == [True, True]
    assert queue.counts() == {"queued": 0, "running": 1, "complete": 2}
    assert [o.number for o in queue.pop_news(10, 0, with_reports=False)[0]] == [0, 1]


def test_stale_and_repeated_results_are_fenced_off(redis_url: str) -> None:
    queue, _ = _queue(redis_url, 1)
    queue.claim("w", 1, lease_s=30)
    assert queue.finish([_finish(0, 2)]) == [False]  # an attempt that never was
    assert queue.finish([_finish(0, 1)]) == [True]
    assert queue.finish([_finish(0, 1)]) == [False]  # told once only
    assert len(queue.pop_news(10, 0, with_reports=False)[0]) == 1
    assert queue.counts()["complete"] == 1


def test_report_records_value_and_returns_prune_decision(redis_url: str) -> None:
    queue, _ = _queue(redis_url, 1)
    queue.claim("w", 1, lease_s=30)
    assert queue.report(Report(0, 1, 0, 0.9583333333333334)) == 0
    queue.decide([0], {})
    assert queue.report(Report(0, 1, 1, 0.5)) == 1
    assert queue.report(Report(0, 7, 2, 0.5)) == -1  # stale attempt
    assert queue.intermediate_values([0]) == {0: {0: 0.9583333333333334, 1: 0.5}}
    assert [r.step for r in queue.pop_news(10, 0, with_reports=True)[1]] == [0, 1]


def test_cancel_only_touches_queued_trials(redis_url: str) -> None:
    queue, _ = _queue(redis_url, 3)
    queue.claim("w", 1, lease_s=30)
    assert queue.cancel([0, 1, 2]) == 2
    assert queue.counts() == {"queued": 0, "running": 1, "cancelled": 2}
    assert queue.claim("w", 10, lease_s=30) == []


def test_garbage_in_results_is_quarantined(redis_url: str) -> None:
    queue, _ = _queue(redis_url, 1)
    queue.connection.rpush(f"{queue.prefix}:results", b"\x80garbage", b'{"n": 1}')
    assert queue.pop_news(10, 0, with_reports=False)[0] == []
    assert queue.quarantined() == 2


def test_controller_lock_is_exclusive_and_renewable(redis_url: str) -> None:
    queue, _ = _queue(redis_url, 1)
    assert queue.acquire_lock("a", 5000)
    assert not queue.acquire_lock("b", 5000)
    assert queue.renew_lock("a", 5000) and not queue.renew_lock("b", 5000)
    queue.release_lock("b")  # not the holder: no effect
    assert not queue.acquire_lock("b", 5000)
    queue.release_lock("a")
    assert queue.acquire_lock("b", 5000)


def test_claim_takes_at_most_the_batch_in_order(redis_url: str) -> None:
    queue, _ = _queue(redis_url, 5)
    assert [c.task.number for c in queue.claim("w", 2, lease_s=30)] == [0, 1]
    assert [c.task.number for c in queue.claim("v", 2, lease_s=30)] == [2, 3]
    assert queue.waiting_jobs() == 1  # one wake-up job for the one batch enqueued


def test_expired_leases_are_requeued_then_failed_past_retries(redis_url: str) -> None:
    queue, _ = _queue(redis_url, 1)
    [claim] = queue.claim("w", 1, lease_s=0.001)
    assert claim.attempt == 1
    poll(lambda: queue.reap(attempts_allowed=2) == 1, 5, "the first lease to expire")
    [claim] = queue.claim("w", 1, lease_s=0.001)
    assert claim.attempt == 2
    poll(lambda: queue.reap(attempts_allowed=2) == 0
         and queue.records_for([0])[0]["state"] == "failed", 5, "the second lease to expire")
    record = queue.records_for([0])[0]
    assert record["state"] == "failed" and "lease expired" in record["reason"]
    assert queue.counts()["requeued"] == 1 and queue.failure_kinds() == {"lease expired": 1}
    assert [o.state.value for o in queue.pop_news(10, 0, with_reports=False)[0]] == ["failed"]
    assert queue.finish([_finish(0, 2)]) == [False]  # the lost worker's late result is fenced


def test_release_requeues_without_using_an_attempt(redis_url: str) -> None:
    queue, _ = _queue(redis_url, 2)
    claims = queue.claim("w", 2, lease_s=30)
    held = [(c.task.number, c.attempt) for c in claims]
    assert queue.release("other", held) == [False, False]  # only the holder may release
    assert queue.release("w", held) == [True, True]
    again = queue.claim("v", 2, lease_s=30)
    assert [(c.task.number, c.attempt) for c in again] == [(1, 2), (0, 2)]
    assert queue.finish([_finish(0, 1)]) == [False]  # fencing stays monotonic


def test_renew_keeps_only_our_leases(redis_url: str) -> None:
    queue, _ = _queue(redis_url, 1)
    [claim] = queue.claim("w", 1, lease_s=0.5)
    assert queue.renew("w", [(0, claim.attempt)], lease_s=30) == [True]
    assert queue.renew("x", [(0, claim.attempt)], lease_s=30) == [False]
    assert queue.renew("w", [(0, claim.attempt + 1)], lease_s=30) == [False]

