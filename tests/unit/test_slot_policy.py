"""The launchers' one restart policy (hq_sweep.launchers.slots): pure logic on a fake clock."""

from __future__ import annotations

import signal

import pytest

from hq_sweep import exitcodes
from hq_sweep.launchers.slots import (
    Action,
    CrashPolicy,
    Decision,
    Slot,
    Slots,
    exit_reason,
    gave_up_text,
)

POLICY = CrashPolicy(max_crashes=3, crash_window_s=60.0, backoff_initial_s=1.0,
                     backoff_max_s=4.0)


def slot(started_at: float = 100.0, policy: CrashPolicy = POLICY) -> Slot:
    return Slot(0, policy, started_at)


def crash_and_restart(s: Slot, now: float) -> Decision:
    """A crash at `now` whose restart happens as soon as it is due."""
    decision = s.exited(exitcodes.ERROR, now)
    assert decision.action is Action.RESTART
    assert s.restart_at is not None
    s.started(s.restart_at)
    return decision


@pytest.mark.parametrize("code", sorted(exitcodes.NO_RESTART))
def test_deliberate_and_unusable_exits_finish_the_slot(code: int) -> None:
    s = slot()
    assert s.exited(code, 101.0) == Decision(Action.FINISH)
    assert s.finished and not s.gave_up and not s.waiting and not s.running
    assert list(s.crashes) == []
    assert not s.due(10_000.0)


def test_draining_finishes_even_a_crash_or_a_recycle() -> None:
    for code in (exitcodes.ERROR, exitcodes.RECYCLE, -signal.SIGKILL, 77):
        s = slot()
        assert s.exited(code, 101.0, draining=True).action is Action.FINISH
        assert s.finished and not s.gave_up and list(s.crashes) == []


@pytest.mark.parametrize("code", sorted(exitcodes.REPLACE))
def test_recycle_and_hung_are_replaced_at_once_and_are_no_crash(code: int) -> None:
    s = slot()
    crash_and_restart(s, 101.0)  # backoff now 2 s
    for now in (110.0, 111.0, 112.0, 113.0, 114.0):  # more than max_crashes hand-overs
        assert s.exited(code, now) == Decision(Action.REPLACE)
        assert not s.finished and not s.waiting and s.restart_at is None
        s.started(now)
    assert len(s.crashes) == 1
    assert s.backoff_s == 2.0  # a quick hand-over neither grows nor resets the backoff


def test_crash_restarts_after_a_doubling_backoff_capped_at_the_max() -> None:
    policy = CrashPolicy(max_crashes=100, crash_window_s=60.0, backoff_initial_s=1.0,
                         backoff_max_s=4.0)
    s = slot(policy=policy)
    delays = []
    now = 100.0
    for _ in range(5):
        now += 0.5
        decision = crash_and_restart(s, now)
        delays.append(decision.delay_s)
        now = s.started_at
    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]


def test_restart_is_due_only_once_the_backoff_is_over() -> None:
    s = slot()
    decision = s.exited(-signal.SIGKILL, 105.0)
    assert decision == Decision(Action.RESTART, delay_s=1.0, crashes=1)
    assert s.waiting and not s.running and not s.finished
    assert s.restart_at == 106.0
    assert not s.due(105.999)
    assert s.due(106.0)
    s.started(106.0)
    assert not s.waiting and s.running and s.started_at == 106.0
    assert not s.due(200.0)


def test_gives_up_after_max_crashes_within_the_window() -> None:
    s = slot()
    assert crash_and_restart(s, 101.0).crashes == 1
    assert crash_and_restart(s, s.started_at + 0.1).crashes == 2
    decision = s.exited(exitcodes.ERROR, s.started_at + 0.1)
    assert decision == Decision(Action.GIVE_UP, crashes=3)
    assert s.finished and s.gave_up and not s.waiting
    assert not s.due(10_000.0)


def test_crashes_older_than_the_window_do_not_count() -> None:
    policy = CrashPolicy(max_crashes=3, crash_window_s=10.0, backoff_initial_s=1.0)
    s = slot(policy=policy)
    now = 100.0
    for _ in range(6):  # a crash every 6 s: never three within 10 s
        now += 6.0
        s.started(now - 5.0)  # each run shorter than the window: the backoff keeps growing
        decision = s.exited(exitcodes.ERROR, now)
        assert decision.action is Action.RESTART, decision
        assert decision.crashes <= 2
    assert not s.gave_up


def test_a_long_healthy_run_forgives_old_crashes() -> None:
    s = slot(policy=CrashPolicy(max_crashes=10, crash_window_s=60.0, backoff_initial_s=1.0,
                                backoff_max_s=4.0))
    crash_and_restart(s, 100.5)  # 1 s
    crash_and_restart(s, s.started_at + 1.0)  # 2 s
    assert crash_and_restart(s, s.started_at + 1.0).delay_s == 4.0
    # Then a run of exactly the window: the next crash waits the first delay again.
    assert crash_and_restart(s, s.started_at + 60.0).delay_s == 1.0
    assert crash_and_restart(s, s.started_at + 59.0).delay_s == 2.0  # a shorter one does not


def test_a_failed_start_is_a_crash() -> None:
    s = slot()
    assert s.crashed(100.0) == Decision(Action.RESTART, delay_s=1.0, crashes=1)
    assert s.crashed(101.0) == Decision(Action.RESTART, delay_s=2.0, crashes=2)
    assert s.crashed(103.0).action is Action.GIVE_UP
    assert s.gave_up


def test_slots_drain_drops_pending_restarts_but_keeps_running_ones() -> None:
    slots = Slots(POLICY)
    for rank in range(3):
        assert slots.add(100.0).rank == rank
    assert len(slots) == 3 and slots.open()
    assert slots.exited(1, exitcodes.ERROR, 101.0).action is Action.RESTART
    assert slots.exited(2, exitcodes.OK, 101.0).action is Action.FINISH
    assert slots.next_due() == 102.0
    assert [s.rank for s in slots.due(102.0)] == [1]
    assert [s.rank for s in slots.running()] == [0]

    dropped = slots.drain()
    assert [s.rank for s in dropped] == [1]
    assert slots.draining and slots.next_due() is None and slots.due(200.0) == []
    assert [s.rank for s in slots.running()] == [0]  # still the launcher's to watch
    assert slots.open()
    assert slots.exited(0, exitcodes.ERROR, 103.0).action is Action.FINISH  # no restart now
    assert not slots.open()
    assert slots.gave_up() == []


def test_slots_finish_all_and_gave_up() -> None:
    slots = Slots(CrashPolicy(max_crashes=1))
    slots.add(0.0)
    slots.add(0.0)
    assert slots.exited(0, exitcodes.ERROR, 1.0).action is Action.GIVE_UP
    assert slots.gave_up() == [0]
    assert slots.open()  # rank 1 still runs
    slots.finish_all()
    assert not slots.open() and slots.draining
    assert slots.gave_up() == [0]
    assert [s.rank for s in slots] == [0, 1] and slots[1].finished and not slots[1].gave_up


def test_texts_keep_the_exit_code_beside_its_name() -> None:
    assert exit_reason(exitcodes.ERROR) == "exit code 1 (error)"
    assert exit_reason(2) == "exit code 2"
    assert exit_reason(-9) == "killed by signal 9"
    decision = Decision(Action.GIVE_UP, crashes=3)
    assert gave_up_text(4, decision, POLICY, "exit code 2") == (
        "worker 4 crash-loops (3 crashes in 60 s, last: exit code 2); giving up on it")


def test_policy_rejects_settings_that_cannot_work() -> None:
    with pytest.raises(ValueError):
        CrashPolicy(max_crashes=0)
    with pytest.raises(ValueError):
        CrashPolicy(backoff_initial_s=-1.0)
