"""Prune decisions through the real path — worker reports in Redis, the controller's study and
pruner, the flag read back — on fixed curves, one trial at a time, against Optuna's own
decisions for the same curves."""

from __future__ import annotations

import time
from typing import Any

import optuna
import pytest

from hq_sweep.controller.loop import Controller, ControllerOptions
from hq_sweep.controller.samplers_pruners import build_pruner
from hq_sweep.messages import Action, Decision, Report, TrialOutcome, TrialState
from hq_sweep.queue.client import connect
from hq_sweep.queue.registry import SweepRegistry
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.queue.trials import Finish
from hq_sweep.spec.sweep import SweepSpec, parse_spec

GO_ON, PRUNE = Action.CONTINUE, Action.PRUNE
pytestmark = pytest.mark.integration
TRIALS, STEPS = 12, 6


def curve(number: int) -> list[float]:
    """Loss curves (minimized) that cross and spread, so every pruner has work to do."""
    base = ((number * 7) % TRIALS) / TRIALS
    stalls = number % 3 == 2  # every third curve gets worse after step 1
    return [round(base + (1.0 / (min(step, 1) + 1) + 0.1 * step if stalls else 1.0 / (step + 1))
                  + 0.03 * ((number + step) % 3), 6) for step in range(STEPS)]


PRUNERS: dict[str, dict[str, Any]] = {
    "median": {"pruner": {"name": "median", "options": {"n_startup_trials": 2}}},
    "percentile": {"pruner": {"name": "percentile",
                              "options": {"percentile": 25.0, "n_startup_trials": 2}}},
    "successive_halving": {"pruner": {"name": "successive_halving",
                                      "options": {"min_resource": 1, "reduction_factor": 2}}},
    "hyperband": {"pruner": {"name": "hyperband",
                             "options": {"min_resource": 1, "max_resource": STEPS,
                                         "reduction_factor": 2}}},
    "threshold": {"pruner": {"name": "threshold", "options": {"upper": 1.2}}},
    "patient": {"pruner": {"name": "patient", "options": {
        "patience": 1, "wrapped_pruner": {"name": "median",
                                          "options": {"n_startup_trials": 2}}}}},
    "wilcoxon": {"pruner": {"name": "wilcoxon", "options": {"p_threshold": 0.2}}},
    "nop": {"pruner": {"name": "nop"}},
    "wandb_hyperband": {"early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 2}},
}


def make_spec(extra: dict[str, Any]) -> SweepSpec:
    return parse_spec({"name": "det", "method": "grid", "metric": {"name": "loss"},
                       "parameters": {"i": {"values": list(range(TRIALS))}}, **extra})


def reference(spec: SweepSpec) -> dict[int, int | None]:
    """Optuna alone: the step at which each trial is pruned (None: it completes)."""
    study = optuna.create_study(study_name="det", pruner=build_pruner(spec))
    decisions: dict[int, int | None] = {}
    for number in range(TRIALS):
        trial = study.ask()
        decisions[number] = None
        for step, value in enumerate(curve(number)):
            trial.report(value, step)
            if trial.should_prune():
                decisions[number] = step
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                break
        else:
            study.tell(trial, curve(number)[-1])
    return decisions


def through_hq_sweep(redis_url: str, spec: SweepSpec) -> dict[int, int | None]:
    connection = connect(redis_url)
    sweep = SweepRegistry(connection).create("det", "{}", "h", "/")
    queue = SweepQueue(connection, sweep)
    controller = Controller(queue, spec, ControllerOptions(wait_s=0.0))
    controller.next_number = 0
    decisions: dict[int, int | None] = {}
    for number in range(TRIALS):
        controller.step()  # asks ahead: trial `number` is ready
        [claim] = queue.trials.claim("w", 1, lease_s=30)
        assert claim.task.number == number
        decisions[number] = run_one(queue, controller, number, claim.attempt)
    return decisions


def run_one(queue: SweepQueue, controller: Controller, number: int, attempt: int) -> int | None:
    pruned_at = None
    for step, value in enumerate(curve(number)):
        assert not queue.reports.report(Report(number, attempt, step, value)).superseded
        controller.step()  # the controller reads the report and decides
        flagged = queue.trials.records_for([number])[0].decision
        if flagged is not None and flagged.prunes:
            assert flagged == Decision(step, PRUNE)  # decided on the step just reported
            pruned_at = step
            break
    state = TrialState.PRUNED if pruned_at is not None else TrialState.COMPLETE
    values = [curve(number)[-1]] if pruned_at is None else None
    outcome = TrialOutcome(number, attempt, state, values)
    assert queue.trials.finish([Finish(outcome, time.time())]) == [True]
    controller.step()  # told
    return pruned_at


@pytest.mark.parametrize("name", sorted(PRUNERS))
@pytest.mark.timeout(60)
def test_prune_decisions_match_optuna_on_fixed_curves(redis_url: str, name: str) -> None:
    spec = make_spec(PRUNERS[name])
    expected = reference(spec)
    assert through_hq_sweep(redis_url, spec) == expected
    if name != "nop":
        assert any(step is not None for step in expected.values()), "curves prune nothing"


def threshold_controller(redis_url: str, name: str) -> tuple[SweepQueue, Controller]:
    spec = make_spec({"pruner": {"name": "threshold", "options": {"upper": 1.0}}})
    connection = connect(redis_url)
    queue = SweepQueue(connection, SweepRegistry(connection).create(name, "{}", "h", "/"))
    controller = Controller(queue, spec, ControllerOptions(wait_s=0.0))
    controller.step()  # asks ahead: trials are ready
    return queue, controller


@pytest.mark.timeout(30)
def test_controller_answers_a_report_that_waits_and_only_that(redis_url: str) -> None:
    queue, controller = threshold_controller(redis_url, "answers")
    first, second = queue.trials.claim("w", 2, lease_s=30)
    queue.reports.report(Report(first.task.number, first.attempt, 0, 0.5, awaits=True))
    queue.reports.report(Report(second.task.number, second.attempt, 0, 2.0, awaits=True))
    controller.step()
    # under the threshold:
    assert queue.reports.await_decision(first.task.number, 0, timeout_s=5) == Decision(0, GO_ON)
    assert queue.reports.await_decision(second.task.number, 0, timeout_s=5) == Decision(0, PRUNE)
    # An answer names its step: a wait for a later step does not take an older answer.
    queue.reports.report(Report(first.task.number, first.attempt, 1, 0.5))  # not waiting: no answer
    controller.step()
    assert queue.reports.await_decision(first.task.number, 1, timeout_s=0.05) is None


@pytest.mark.timeout(30)
def test_a_decision_wait_keeps_its_own_deadline(redis_url: str) -> None:
    """Redis times BLPOP out on its 100 ms tick; a 20 ms budget must cost about 20 ms."""
    queue, _ = threshold_controller(redis_url, "deadline")
    for _ in range(5):
        began = time.monotonic()
        assert queue.reports.await_decision(0, 0, timeout_s=0.02) is None
        assert time.monotonic() - began < 0.08
    assert queue.connection.ping()  # the dropped link reconnects for the next command
    queue.reports.decide({}, {0: Decision(3, PRUNE)})
    assert queue.reports.await_decision(0, 3, timeout_s=5) == Decision(3, PRUNE)
