"""Define-by-run parameters: those an objective samples by running `trial.suggest_*` for a
name the sweep file does not declare. The worker asks; the controller's own Optuna trial for
that number samples it with the same distribution (so the sampler's relative and independent
sampling are exactly Optuna's), and the trial's record keeps the value beside its
distribution (`distribution_to_json` text), from which a restarted controller restores it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
    json_to_distribution,
)

from hq_sweep.controller.space import SearchSpace


def sample(trial: optuna.trial.Trial, name: str, distribution: BaseDistribution) -> Any:
    """What the objective's `trial.suggest_*(name, ...)` would return in Optuna itself: the
    real trial's method for this distribution (ValueError where the study refuses it)."""
    if isinstance(distribution, FloatDistribution):
        return trial.suggest_float(name, distribution.low, distribution.high,
                                   step=distribution.step, log=distribution.log)
    if isinstance(distribution, IntDistribution):
        return trial.suggest_int(name, distribution.low, distribution.high,
                                 step=distribution.step, log=distribution.log)
    if isinstance(distribution, CategoricalDistribution):
        return trial.suggest_categorical(name, distribution.choices)  # type: ignore[call-overload]
    raise ValueError(f"{type(distribution).__name__} is not a distribution suggest_* makes")


def record_params(space: SearchSpace, trial: optuna.trial.Trial
                  ) -> tuple[dict[str, Any], dict[str, str]]:
    """The trial's parameters as its record holds them (declared ones as the objective sees
    them, constants included; define-by-run ones as sampled) and the define-by-run ones'
    distributions."""
    latent = trial.params
    params = space.to_params(latent)
    extra = {name: value for name, value in latent.items() if name not in space.distributions}
    params.update(extra)
    distributions = trial.distributions
    return params, {name: distribution_to_json(distributions[name]) for name in extra}


def stored(params: Mapping[str, Any], distributions: Mapping[str, str] | None
           ) -> dict[str, tuple[Any, BaseDistribution]]:
    """A record's define-by-run parameters: name -> (value, distribution). Raises ValueError
    for a distribution that does not read or a value it does not hold."""
    found: dict[str, tuple[Any, BaseDistribution]] = {}
    for name, text in (distributions or {}).items():
        if name not in params:
            raise ValueError(f"define-by-run parameter {name!r} has no value")
        distribution = json_to_distribution(text)
        value = params[name]
        if not distribution._contains(distribution.to_internal_repr(value)):
            raise ValueError(f"{name}={value!r} is outside its distribution")
        found[name] = (value, distribution)
    return found
