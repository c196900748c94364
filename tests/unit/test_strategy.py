"""The strategy interface, through its Optuna ask/tell implementation: no Redis involved."""

from __future__ import annotations

from typing import Any

import pytest

from hq_sweep.controller.strategy._base import Best, Decisions, History, Stop, Strategy
from hq_sweep.controller.strategy.optuna_ask_tell import OptunaAskTell
from hq_sweep.messages import (
    Action,
    Decision,
    Report,
    TrialOutcome,
    TrialRecord,
    TrialState,
)
from hq_sweep.spec.sweep import parse_spec

RANDOM = {"name": "s", "method": "random", "metric": {"name": "loss", "goal": "minimize"},
          "parameters": {"x": {"min": 0.0, "max": 1.0}}}


def strategy(**extra: Any) -> Strategy:
    """Typed as the Protocol, so mypy checks that OptunaAskTell implements it."""
    found: Strategy = OptunaAskTell(parse_spec({**RANDOM, **extra}), "s", seed=1)
    return found


def complete(number: int, value: float) -> TrialOutcome:
    return TrialOutcome(number, 1, TrialState.COMPLETE, [value], duration=0.1)


def test_ask_numbers_tasks_as_told_and_priors_come_first() -> None:
    s = strategy(priors=[{"x": 0.25}])
    tasks = s.ask(range(0, 3))
    assert [t.number for t in tasks] == [0, 1, 2] and tasks[0].params == {"x": 0.25}
    assert set(s.pending) == {0, 1, 2} and s.stop is None


def test_each_trial_is_told_once_and_the_best_is_kept() -> None:
    s = strategy()
    s.ask(range(3))
    assert s.tell(complete(0, 0.5)) and not s.tell(complete(0, 0.1))  # a repeat is ignored
    assert s.tell(complete(1, 0.2))
    assert s.tell(TrialOutcome(2, 1, TrialState.FAILED, reason="boom"))
    assert not s.tell(complete(7, 0.0))  # never asked
    assert (s.told, s.held(), s.best, list(s.pending)) == (3, 3, Best(0.2, 1), [])


def test_a_grid_stops_asking_at_its_last_point() -> None:
    s = strategy(method="grid", parameters={"x": {"values": [1, 2, 3]}})
    assert [t.params["x"] for t in s.ask(range(0, 2))] == [1, 2] and s.stop is None
    assert [t.params["x"] for t in s.ask(range(2, 10))] == [3]
    assert s.stop == Stop("grid exhausted")
    assert s.ask(range(3, 5)) == []


def test_reaching_the_target_stops_and_withdraws_the_queue() -> None:
    s = strategy(metric={"name": "loss", "goal": "minimize", "target": 0.3})
    s.ask(range(3))
    s.tell(complete(0, 0.5))
    assert s.stop is None
    s.tell(complete(1, 0.25))
    assert s.stop == Stop("target 0.3 reached", withdraw=True) and s.ask(range(3, 4)) == []
    assert s.tell(TrialOutcome(2, 0, TrialState.CANCELLED))  # withdrawn: held, not told
    assert (s.told, s.held(), list(s.pending)) == (2, 3, [])


def test_decide_flags_prunes_once_and_answers_every_wait() -> None:
    s = strategy(pruner={"name": "threshold", "options": {"upper": 1.0}})
    assert s.wants_reports
    s.ask(range(2))
    decisions = s.decide([Report(0, 1, 0, 0.5, awaits=True), Report(1, 1, 0, 2.0),
                          Report(1, 1, 1, 3.0, awaits=True), Report(9, 1, 0, 5.0)])
    prune = Decision(1, Action.PRUNE)
    assert decisions == Decisions({1: prune}, {0: Decision(0, Action.CONTINUE), 1: prune})
    again = s.decide([Report(1, 1, 1, 3.0), Report(1, 1, 2, 3.0, awaits=True)])
    assert again == Decisions({}, {1: Decision(2, Action.PRUNE)})  # flagged once, answered
    assert not strategy().wants_reports


def record(number: int, state: TrialState, x: float, **fields: Any) -> TrialRecord:
    return TrialRecord(number, state, params={"x": x}, **fields)


def test_restore_resumes_from_records_alone() -> None:
    s = strategy(pruner={"name": "threshold", "options": {"upper": 1.0}})
    records = [record(0, TrialState.COMPLETE, 0.1, values=[0.4]),
               record(1, TrialState.RUNNING, 0.2, attempt=1),
               record(2, TrialState.FAILED, 0.3),
               record(3, TrialState.COMPLETE, 0.4, problem="values '[x' does not read"),
               TrialRecord.from_hash(4, {}),  # no record: skipped
               record(5, TrialState.CANCELLED, 0.6),
               record(6, TrialState.QUEUED, 0.7)]
    kept: list[int] = []
    s.restore(History(records, {1: {0: 0.5}}), lambda: kept.append(1))
    assert kept and (s.told, sorted(s.pending), s.best) == (3, [1, 6], Best(0.4, 0))
    assert s.decide([Report(1, 2, 0, 9.0), Report(1, 2, 1, 0.5)]).flags == {}  # step 0 seen
    assert s.tell(complete(1, 0.3)) and s.best == Best(0.3, 1)


@pytest.mark.parametrize(("records", "stop"), [
    (3, Stop("grid exhausted")),  # every grid point was asked before the restart
    (1, None),
])
def test_restore_knows_a_grid_it_finished_asking(records: int, stop: Stop | None) -> None:
    s = strategy(method="grid", parameters={"x": {"values": [0.1, 0.2, 0.3]}})
    s.restore(History([record(n, TrialState.QUEUED, 0.1 * (n + 1)) for n in range(records)],
                      {}), lambda: None)
    assert s.stop == stop


def test_restore_stops_again_when_the_target_was_reached_before() -> None:
    s = strategy(metric={"name": "loss", "goal": "minimize", "target": 0.3})
    s.restore(History([record(0, TrialState.COMPLETE, 0.1, values=[0.2]),
                       record(1, TrialState.QUEUED, 0.5)], {}), lambda: None)
    assert s.stop == Stop("target 0.3 reached", withdraw=True) and list(s.pending) == [1]
