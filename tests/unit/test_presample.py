"""Sampling define-by-run parameters ahead, in the controller's strategy (pure logic: an
in-memory study): what is sampled ahead, when, and a name the objective then asks with
another distribution."""

from __future__ import annotations

from typing import Any

import optuna
import pytest
from optuna.distributions import FloatDistribution, distribution_to_json, json_to_distribution

from hq_sweep.controller.strategy.optuna_ask_tell import OptunaAskTell
from hq_sweep.messages import SuggestRequest, TrialOutcome, TrialState
from hq_sweep.spec.sweep import parse_spec

pytestmark = pytest.mark.timeout(30)
X = FloatDistribution(0.0, 1.0)
Y = FloatDistribution(1e-3, 1.0, log=True)


def _strategy(presample: str = "auto", method: str = "random") -> OptunaAskTell:
    spec = parse_spec({"method": method, "seed": 3, "run_cap": 100,
                       "metric": {"name": "value", "goal": "minimize"},
                       "worker": {"module": "obj.py", "presample": presample}})
    return OptunaAskTell(spec, "presample")


def _ask_value(strategy: OptunaAskTell, number: int, name: str, dist: Any) -> Any:
    answer = strategy.suggest(SuggestRequest(number, 1, name, distribution_to_json(dist))).answer
    assert answer.error is None and not answer.stale
    return answer.value


def _run_one(strategy: OptunaAskTell, number: int, duration: float) -> dict[str, Any]:
    """Trial `number` as a fixed-space objective runs it: x, then y, asked if not ahead."""
    (task,) = strategy.ask(range(number, number + 1))
    params = dict(task.params)
    for name, dist in (("x", X), ("y", Y)):
        if name not in task.distributions:
            params[name] = _ask_value(strategy, number, name, dist)
    strategy.tell(TrialOutcome(number, 1, TrialState.COMPLETE, [params["x"]],
                               duration=duration))
    return task.distributions


def test_short_trials_of_a_fixed_space_are_sampled_ahead_after_the_first() -> None:
    strategy = _strategy()
    assert _run_one(strategy, 0, duration=0.01) == {}  # nothing finished: nothing known
    ahead = _run_one(strategy, 1, duration=0.01)
    assert {n: json_to_distribution(t) for n, t in ahead.items()} == {"x": X, "y": Y}
    trial = strategy.study.trials[1]
    assert set(trial.params) == {"x", "y"} and Y._contains(Y.to_internal_repr(trial.params["y"]))


@pytest.mark.parametrize(("presample", "duration", "ahead"),
                         [("auto", 5.0, False), ("never", 0.01, False), ("always", 5.0, True)])
def test_the_policy_decides_when(presample: str, duration: float, ahead: bool) -> None:
    strategy = _strategy(presample)
    _run_one(strategy, 0, duration)
    assert bool(_run_one(strategy, 1, duration)) is ahead


def test_a_name_asked_with_other_bounds_is_sampled_again_from_them() -> None:
    strategy = _strategy("always")
    _run_one(strategy, 0, 0.01)
    (task,) = strategy.ask(range(1, 2))
    assert "y" in task.distributions
    narrow = FloatDistribution(0.5, 0.6, log=True)
    value = _ask_value(strategy, 1, "y", narrow)
    assert 0.5 <= value <= 0.6
    assert _ask_value(strategy, 1, "y", narrow) == value  # a resent request: the same
    trial = strategy.pending_trials[1]
    assert trial.distributions["y"] == narrow and trial.params["y"] == value


def test_a_conditional_name_is_not_sampled_ahead_nor_kept_when_unasked() -> None:
    """model every time, then c or d: only model is sampled ahead once both were seen; a
    name sampled ahead that the objective never asks leaves the trial before it is told."""
    strategy = _strategy("always", method="bayes")
    model = optuna.distributions.CategoricalDistribution(["a", "b"])
    for number in range(6):
        (task,) = strategy.ask(range(number, number + 1))
        if "model" not in task.distributions:
            _ask_value(strategy, number, "model", model)
        asked = "c" if number % 2 == 0 else "d"
        if asked not in task.distributions:
            _ask_value(strategy, number, asked, X)
        unused = tuple(n for n in task.distributions if n not in ("model", asked))
        strategy.tell(TrialOutcome(number, 1, TrialState.COMPLETE, [0.5], duration=0.01,
                                   unused=unused))
        assert set(strategy.study.trials[number].params) == {"model", asked}
    (task,) = strategy.ask(range(6, 7))
    assert set(task.distributions) == {"model"}  # asked by every trial; c and d by some
