"""Where a worker waits for prune decisions: pure logic of the cost/benefit rule."""

from __future__ import annotations

import pytest

from hq_sweep.worker.decision_wait import MIN_WAIT_S, WAIT_CAP_S, WAIT_SHARE, DecisionWaits

pytestmark = pytest.mark.timeout(10)


def test_tiny_steps_never_wait() -> None:
    waits = DecisionWaits()
    assert waits.budget(step=1, step_s=MIN_WAIT_S / WAIT_SHARE / 2) == 0.0
    assert waits.budget(step=1, step_s=0.0) == 0.0


def test_an_unknown_step_waits_a_share_of_its_length_capped() -> None:
    waits = DecisionWaits()
    assert waits.budget(step=1, step_s=0.1) == pytest.approx(WAIT_SHARE * 0.1)
    assert waits.budget(step=1, step_s=3600.0) == WAIT_CAP_S


def test_a_step_that_never_prunes_stops_being_waited_on() -> None:
    waits = DecisionWaits()
    rounds = 0
    while waits.budget(step=4, step_s=0.01):
        waits.observe(4, pruned=False)
        rounds += 1
        assert rounds < 20, "kept waiting on a step that never prunes"
    # A step that prunes half the time (an ASHA rung) is still worth waiting for.
    for i in range(50):
        waits.observe(1, pruned=False)
        if i % 2:
            waits.observe(1, pruned=True)
    assert waits.budget(step=1, step_s=0.01) > 0


def test_a_late_prune_counts_for_the_step_it_was_decided_on() -> None:
    waits = DecisionWaits()
    for _ in range(30):  # reports at steps 1 and 2; every trial pruned at 1, learnt at 2
        waits.observe(1, pruned=False)
        waits.observe(2, pruned=False)
        waits.observe(1, pruned=True)
    assert waits.budget(step=1, step_s=0.01) > 0
    assert waits.budget(step=2, step_s=0.01) == 0.0


def test_a_slow_controller_makes_waits_rarer() -> None:
    waits = DecisionWaits()
    for i in range(20):
        waits.observe(1, pruned=False)
        if i % 2:
            waits.observe(1, pruned=True)  # odds 1/2 x 20 ms beat a ~2 ms wait
    for _ in range(30):
        waits.waited(0.015, answered=False)  # every wait ran out
    assert waits.budget(step=1, step_s=0.02) == 0.0
    assert waits.budget(step=1, step_s=1.0) > 0  # long steps still pay for it
    assert (waits.waits, waits.answered) == (30, 0)
