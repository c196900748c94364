"""Finished trials loaded into a rebuilt study: what create_trial would give, stored safely."""

from __future__ import annotations

import optuna
import pytest
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution

from hq_sweep.controller.rebuild import finished_trial
from hq_sweep.messages import TrialState

SPACE: dict[str, BaseDistribution] = {"x": FloatDistribution(0, 1), "n": IntDistribution(1, 9)}
LATENT = {"x": 0.25, "n": 3}


@pytest.mark.parametrize(("state", "stored", "optuna_state", "values"), [
    (TrialState.COMPLETE, [0.5], optuna.trial.TrialState.COMPLETE, [0.5]),
    (TrialState.PRUNED, [0.25], optuna.trial.TrialState.PRUNED, None),  # a pruned trial's last
    (TrialState.FAILED, None, optuna.trial.TrialState.FAIL, None),
])
def test_a_loaded_trial_is_what_create_trial_makes(
    state: TrialState, stored: list[float] | None, optuna_state: optuna.trial.TrialState,
    values: list[float] | None,
) -> None:
    intermediate = {0: 0.9, 1: 0.7}
    ours = finished_trial(SPACE, dict(LATENT), state, stored, intermediate)
    theirs = optuna.trial.create_trial(state=optuna_state, values=values, params=dict(LATENT),
                                       distributions=dict(SPACE),
                                       intermediate_values=intermediate)
    fields = ("state", "values", "params", "distributions", "intermediate_values",
              "user_attrs", "system_attrs")
    assert all(getattr(ours, f) == getattr(theirs, f) for f in fields)


def test_the_stored_trial_is_a_plain_one_that_later_copies_copy_deeply() -> None:
    study = optuna.create_study()
    study.add_trial(finished_trial(SPACE, dict(LATENT), TrialState.COMPLETE, [0.5], {0: 1.0}))
    stored = study.get_trials(deepcopy=False)[0]
    assert type(stored) is optuna.trial.FrozenTrial and stored.number == 0
    copied = study.trials[0]
    copied.intermediate_values[5] = 2.0
    copied.params["x"] = 0.75
    assert study.trials[0].intermediate_values == {0: 1.0} and study.trials[0].params["x"] == 0.25
    assert study.best_value == 0.5
