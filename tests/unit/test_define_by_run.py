"""Define-by-run on the worker, pure logic: the trial's `suggest_*`, the suggester's retries,
and how an Optuna-style objective is recognised."""

from __future__ import annotations

import functools
from typing import Any

import pytest
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hq_sweep.errors import RedisUnavailable
from hq_sweep.messages import SuggestAnswer, SuggestRequest
from hq_sweep.worker.suggest import Suggester, SuggestUnanswered
from hq_sweep.worker.trial import AttemptSuperseded, Trial
from hq_sweep.worker.usercode import takes_one_argument

pytestmark = pytest.mark.timeout(30)


class Sampled:
    """A controller that answers each new name with `values[name]` (or what `answers` say)."""

    def __init__(self, values: dict[str, Any], answers: dict[str, SuggestAnswer] | None = None
                 ) -> None:
        self.values, self.answers = values, answers or {}
        self.asked: list[tuple[str, BaseDistribution]] = []

    def __call__(self, name: str, distribution: BaseDistribution) -> SuggestAnswer:
        self.asked.append((name, distribution))
        return self.answers.get(name) or SuggestAnswer(name, self.values[name])


def _trial(sampler: Sampled, flat: dict[str, Any] | None = None,
           ahead: dict[str, tuple[Any, BaseDistribution]] | None = None) -> Trial:
    flat = flat or {}
    return Trial(7, 1, flat, dict(flat), lambda step, value: None, sampler=sampler,
                 ahead=ahead)


def test_a_new_name_is_asked_once_then_remembered_with_its_distribution() -> None:
    sampler = Sampled({"x": 0.25, "n": 3, "model": "svm"})
    trial = _trial(sampler)
    assert trial.suggest_float("x", 0.0, 1.0) == 0.25
    assert trial.suggest_float("x", 0.0, 1.0) == 0.25
    assert trial.suggest_int("n", 1, 9, step=2) == 3
    assert trial.suggest_categorical("model", ("svm", "rf")) == "svm"
    assert [name for name, _ in sampler.asked] == ["x", "n", "model"]
    assert trial.params == trial.flat_params == {"x": 0.25, "n": 3, "model": "svm"}
    assert trial.distributions == {"x": FloatDistribution(0.0, 1.0),
                                   "n": IntDistribution(1, 9, step=2),
                                   "model": CategoricalDistribution(("svm", "rf"))}


def test_a_different_distribution_in_the_same_trial_raises_optunas_error() -> None:
    trial = _trial(Sampled({"x": 0.5}))
    trial.suggest_float("x", 0.0, 1.0)
    with pytest.raises(ValueError, match="different distribution kind"):
        trial.suggest_int("x", 0, 5)
    with pytest.raises(ValueError, match="different log configuration"):
        trial.suggest_float("x", 0.1, 1.0, log=True)


def test_the_studys_refusal_and_a_stale_attempt_reach_the_objective() -> None:
    refused = SuggestAnswer("x", error="Cannot set different distribution kind to the same "
                                       "parameter name.")
    with pytest.raises(ValueError, match="different distribution kind"):
        _trial(Sampled({}, {"x": refused})).suggest_int("x", 0, 5)
    with pytest.raises(AttemptSuperseded):
        _trial(Sampled({}, {"x": SuggestAnswer("x", stale=True)})).suggest_int("x", 0, 5)


def test_a_requeued_attempt_gets_the_params_sampled_before_without_asking() -> None:
    sampler = Sampled({})
    trial = _trial(sampler, ahead={"x": (0.75, FloatDistribution(0.0, 1.0)),
                                   "k": (4.0, IntDistribution(1, 8))})
    assert trial.params == {} and trial.distributions == {}  # shown once asked, as in Optuna
    assert trial.suggest_float("x", 0.0, 1.0) == 0.75
    assert trial.suggest_int("k", 1, 8) == 4 and type(trial.suggest_int("k", 1, 8)) is int
    assert sampler.asked == []
    assert trial.params == {"x": 0.75, "k": 4} and set(trial.distributions) == {"x", "k"}


def test_a_name_sampled_ahead_from_another_distribution_is_asked_again() -> None:
    """`suggest_float("y", x, 1.0)`: bounds that move with another parameter. The value
    sampled ahead came from the bounds earlier trials used: the controller samples anew."""
    sampler = Sampled({"y": 0.9})
    trial = _trial(sampler, ahead={"y": (0.2, FloatDistribution(0.0, 1.0))})
    assert trial.suggest_float("y", 0.5, 1.0) == 0.9
    assert sampler.asked == [("y", FloatDistribution(0.5, 1.0))]
    assert trial.suggest_float("y", 0.5, 1.0) == 0.9  # then remembered, no second ask
    assert len(sampler.asked) == 1


def test_declared_parameters_keep_their_assigned_values_and_bad_bounds_raise_here() -> None:
    sampler = Sampled({})
    trial = _trial(sampler, {"model.depth": 3})
    assert trial.suggest_int("depth", 1, 8) == 3 and trial.suggest_float("model.depth") == 3.0
    with pytest.raises(ValueError):  # Optuna's own check of the bounds, in the objective
        trial.suggest_float("lr", 1.0, 0.1)
    with pytest.raises(TypeError, match="needs low and high"):
        trial.suggest_float("momentum")
    assert sampler.asked == []


def test_a_categorical_answer_is_the_very_choice_given() -> None:
    choices = (1, 1.5, None, True)
    for value in choices:
        got = _trial(Sampled({"c": value})).suggest_categorical("c", choices)
        assert got == value and type(got) is type(value)


class FlakyChannel:
    """Redis away once, then no answer once (the controller restarting), then the answer."""

    def __init__(self) -> None:
        self.sent: list[SuggestRequest] = []
        self.replies: list[Any] = [RedisUnavailable("blip"), None,
                                   SuggestAnswer("x", 0.5)]

    def request(self, request: SuggestRequest) -> None:
        self.sent.append(request)
        reply = self.replies[0]
        if isinstance(reply, Exception):
            self.replies.pop(0)
            raise reply

    def await_answer(self, request: SuggestRequest, timeout_s: float) -> SuggestAnswer | None:
        reply = self.replies.pop(0)
        assert not isinstance(reply, Exception)
        return reply  # type: ignore[no-any-return]


def test_the_suggester_retries_through_a_blip_and_a_restarting_controller() -> None:
    channel, flushed = FlakyChannel(), []
    suggester = Suggester(channel, set(), before=lambda: flushed.append(1),  # type: ignore[arg-type]
                          resend_s=0.01)
    answer = suggester.sample(3, 2, "x", FloatDistribution(0.0, 1.0))
    assert answer == SuggestAnswer("x", 0.5) and flushed == [1]
    assert [(r.number, r.attempt, r.name) for r in channel.sent] == [(3, 2, "x")] * 3


def test_the_suggester_gives_up_after_its_patience_or_when_superseded() -> None:
    class Silent:
        def request(self, request: SuggestRequest) -> None: ...

        def await_answer(self, request: SuggestRequest, timeout_s: float) -> None:
            return None

    with pytest.raises(SuggestUnanswered, match="did not answer"):
        Suggester(Silent(), set(), patience_s=0.05,  # type: ignore[arg-type]
                  resend_s=0.01).sample(1, 1, "x", FloatDistribution(0.0, 1.0))
    stale = Suggester(Silent(), {1}).sample(1, 1, "x", FloatDistribution(0.0, 1.0))  # type: ignore[arg-type]
    assert stale.stale


def _two(trial: Any, state: Any) -> None: ...
def _one(trial: Any) -> None: ...
def _defaulted(trial: Any, state: Any = None) -> None: ...
def _star(*args: Any) -> None: ...


@pytest.mark.parametrize("func, optuna_style", [
    (_one, True), (lambda trial: 0.0, True), (_two, False), (_defaulted, False),
    (_star, False), (functools.partial(_two, state=1), True), (print, False)])
def test_an_objective_of_one_argument_is_optuna_style(func: Any, optuna_style: bool) -> None:
    assert takes_one_argument(func) is optuna_style
