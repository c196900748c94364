"""Our tell stores exactly what Optuna's public `Study.tell` stores."""

from __future__ import annotations

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.trial import TrialState

from hq_sweep.controller.fast_tell import tell

OUTCOMES: list[tuple[TrialState, list[float] | None]] = [
    (TrialState.COMPLETE, [0.5]), (TrialState.PRUNED, None), (TrialState.FAIL, None),
    (TrialState.COMPLETE, [0.25]), (TrialState.COMPLETE, [2.0]),
]


def _study(use_ours: bool) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=3, n_startup_trials=2))
    space: dict[str, BaseDistribution] = {"x": FloatDistribution(0, 1)}
    for state, values in OUTCOMES * 3:
        trial = study.ask(space)
        trial.report(1.0, 0)
        if use_ours:
            tell(study, trial, values, state)
        else:
            study.tell(trial, values, state=state)
    return study


def test_the_study_ends_up_the_same() -> None:
    ours, theirs = _study(True), _study(False)
    def seen(study: optuna.Study) -> list[tuple[object, ...]]:
        return [(t.state, t.values, t.params, t.intermediate_values) for t in study.trials]
    assert seen(ours) == seen(theirs)
    assert ours.best_trial.number == theirs.best_trial.number == 3
