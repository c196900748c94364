"""The queue's Lua scripts against a real server: claims, fencing, counts, quarantine."""

from __future__ import annotations

import time
from dataclasses import dataclass, field, fields
from typing import cast

import pytest

from hq_sweep.messages import (
    Action,
    Decision,
    Report,
    TrialOutcome,
    TrialRecord,
    TrialState,
    TrialTask,
    field_codec,
)
from hq_sweep.queue.client import connect
from hq_sweep.queue.registry import SweepRegistry
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.queue.trials import EnqueueConflict, Finish
from tests.integration.helpers import poll

pytestmark = pytest.mark.integration


def _queue(redis_url: str, n: int = 3) -> tuple[SweepQueue, list[TrialTask]]:
    connection = connect(redis_url)
    sweep = SweepRegistry(connection).create("q", "{}", "h", "/tmp")
    queue = SweepQueue(connection, sweep)
    tasks = [TrialTask(i, {"x": i}) for i in range(n)]
    queue.trials.enqueue([tasks], first=0)
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
    assert queue.reports.report(Report(0, 1, 0, 0.9583333333333334)) == ({}, set())
    queue.reports.decide({0: Decision(0, Action.PRUNE)}, {})
    assert queue.trials.records_for([0])[0].decision == Decision(0, Action.PRUNE)  # the flag
    assert queue.reports.report(Report(0, 1, 1, 0.5)).decisions == {0: Decision(0, Action.PRUNE)}
    assert queue.reports.report(Report(0, 7, 2, 0.5)).superseded == {0}  # stale attempt
    assert queue.trials.intermediate_values([0]) == {0: {0: 0.9583333333333334, 1: 0.5}}
    assert [r.step for r in queue.reports.pop_news(10, 0, with_reports=True)[1]] == [0, 1]


def test_cancel_only_touches_queued_trials(redis_url: str) -> None:
    queue, _ = _queue(redis_url, 3)
    queue.trials.claim("w", 1, lease_s=30)
    assert queue.trials.cancel([0, 1, 2]) == [1, 2]
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
    poll(lambda: queue.trials.reap(attempts_allowed=2).requeued == 1, 5,
         "the first lease to expire")
    [claim] = queue.trials.claim("w", 1, lease_s=0.001)
    assert claim.attempt == 2
    failed: list[TrialRecord] = []

    def second_expiry() -> bool:
        reaped = queue.trials.reap(attempts_allowed=2)
        failed.extend(reaped.failed)
        return reaped.requeued == 0 and queue.trials.records_for([0])[0].state is TrialState.FAILED
    poll(second_expiry, 5, "the second lease to expire")
    record = queue.trials.records_for([0])[0]
    assert record.state is TrialState.FAILED and "lease expired" in (record.reason or "")
    assert queue.meta.counts()["requeued"] == 1
    assert queue.meta.failure_kinds() == {"lease expired": 1}
    # The failed record comes back in the reap's reply (the controller tells it), whole:
    assert failed == [record] and record.lease is None and not record.problem
    outcomes = [r.outcome() for r in failed]
    assert [(o.number, o.attempt, o.state.value) for o in outcomes if o] == [(0, 2, "failed")]
    assert queue.reports.pop_news(10, 0, with_reports=False)[0] == []  # not pushed twice
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



def test_finish_writes_the_records_finishing_fields_and_claim_reads_records_whole(
    redis_url: str,
) -> None:
    queue, _ = _queue(redis_url, 1)
    [claim] = queue.trials.claim("w", 1, lease_s=30)
    outcome = TrialOutcome(0, claim.attempt, TrialState.COMPLETE, [2, 0.5], None, {}, 0.25, "w")
    assert queue.trials.finish([Finish(outcome, 100.5, metrics={"acc": 1})]) == [True]
    record = queue.trials.records_for([0])[0]
    assert (record.state, record.values, record.metrics, record.ended_at, record.duration,
            record.worker, record.lease, record.problem) == (
        TrialState.COMPLETE, [2, 0.5], {"acc": 1}, 100.5, 0.25, "w", None, "")
    assert record.outcome() == TrialOutcome(0, 1, TrialState.COMPLETE, [2, 0.5], None,
                                            {"acc": 1}, 0.25, "w")
    assert queue.reports.pop_news(10, 0, with_reports=False)[0] == [
        TrialOutcome(0, 1, TrialState.COMPLETE, [2.0, 0.5], None, {}, 0.25, "w")]


@dataclass(frozen=True, slots=True)
class _WithHost(TrialRecord):
    host: str = field(default="", metadata=field_codec(str, str, finishing=True))


@dataclass(frozen=True, slots=True)
class _HostFinish(Finish):
    def record(self) -> TrialRecord:
        plain = Finish.record(self)
        return _WithHost(**{f.name: getattr(plain, f.name) for f in fields(plain)}, host="n7")


def test_a_new_record_field_needs_no_lua_change(redis_url: str) -> None:
    """Declared once on the record (and set by whoever writes it), a finishing field goes
    through finish.lua as it is, and reads back with the record."""
    queue, _ = _queue(redis_url, 1)
    [claim] = queue.trials.claim("w", 1, lease_s=30)
    outcome = TrialOutcome(0, claim.attempt, TrialState.FAILED, reason="boom")
    assert queue.trials.finish([_HostFinish(outcome, 5.0)]) == [True]
    [stored] = queue.trials.records_for([0])
    assert stored.problem == "" and stored.reason == "boom"  # older readers ignore it
    raw = cast(dict[bytes, bytes], queue.connection.hgetall(queue.keys.trial(0)))
    back = _WithHost.from_hash(0, {k.decode(): v.decode() for k, v in raw.items()})
    assert back.host == "n7" and back.state is TrialState.FAILED and not back.problem


def test_a_claimed_record_that_does_not_read_fails_saying_why(redis_url: str) -> None:
    queue, _ = _queue(redis_url, 2)
    queue.connection.hset(queue.keys.trial(0), "params", "{not json")
    claims = queue.trials.claim("w", 2, lease_s=30)
    assert [(c.task.number, c.attempt) for c in claims] == [(1, 1)]
    [record] = queue.trials.records_for([0])
    assert record.state is TrialState.FAILED and record.attempt == 1
    assert record.reason is not None and record.reason.startswith("unreadable record: params")
    assert queue.meta.counts() == {"queued": 0, "running": 1, "failed": 1}
    assert queue.meta.failure_kinds() == {"unreadable record": 1}
    [told] = queue.reports.pop_news(10, 0, with_reports=False)[0]
    assert (told.number, told.state) == (0, TrialState.FAILED)  # the controller hears of it


def test_enqueue_sent_again_after_a_lost_reply_queues_nothing_twice(redis_url: str) -> None:
    queue, tasks = _queue(redis_url)
    queue.trials.enqueue([tasks], first=0)  # the same call again: its first reply was lost
    assert queue.meta.counts()["queued"] == 3
    assert queue.connection.lrange(queue.keys.part("ready"), 0, -1) == [b"0", b"1", b"2"]
    assert queue.meta.read()["next"] == "3"
    with pytest.raises(EnqueueConflict):  # numbers 1.. are taken: another controller's
        queue.trials.enqueue([[TrialTask(1, {"x": 9})]], first=1)
    assert queue.trials.params(1) == {"x": 1}
