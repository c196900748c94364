"""Define-by-run parameters: those an objective samples by running `trial.suggest_*` for a
name the sweep file does not declare. The worker asks; the controller's own Optuna trial for
that number samples it with the same distribution (so the sampler's relative and independent
sampling are exactly Optuna's), and the trial's record keeps the value beside its
distribution (`distribution_to_json` text), from which a restarted controller restores it.

Sampling ahead (`Presampler`): when trials are short, a round trip per suggest would cost
more than the trial, so the controller samples, as it asks a trial, the names every
finished trial asked with the same distribution (Optuna's intersection search space), as the
objective's own `suggest_*` would; they travel with the task, and the worker answers them
locally. A name sampled ahead that the objective then asks with another distribution is
sampled again (`resample`); one it never asks is taken out before the trial is told
(`forget`), so the study holds what the objective asked, as Optuna's would.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Collection, Mapping
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    check_distribution_compatibility,
    distribution_to_json,
    json_to_distribution,
)
from optuna.search_space import IntersectionSearchSpace
from optuna.storages import InMemoryStorage

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


def resample(trial: optuna.trial.Trial, name: str, distribution: BaseDistribution) -> Any:
    """`name` sampled again, from `distribution`: the objective asks it with another
    distribution than the one it was sampled from ahead. Optuna has no public way to unset a
    parameter; the trial's cached copy forgets it, so its `suggest_*` samples it anew (relative
    value first, if it fits, as Optuna's own) and the storage overwrites it."""
    check_distribution_compatibility(trial.distributions[name], distribution)
    cached = trial._cached_frozen_trial
    cached.params.pop(name, None)
    cached.distributions.pop(name, None)
    return sample(trial, name, distribution)


def forget(trial: optuna.trial.Trial, names: Collection[str]) -> None:
    """Take out of a running trial the names sampled ahead that its objective never asked:
    Optuna records only what an objective asks (and one left in would keep itself in the
    intersection search space, so be sampled ahead for ever). Optuna has no public way to
    unset a parameter; this replaces the in-memory storage's copy of the trial, as its own
    `set_trial_param` does, and the trial's cached one."""
    storage = trial.study._storage
    if not isinstance(storage, InMemoryStorage):  # pragma: no cover - the study is in memory
        return
    stored = copy.copy(storage._get_trial(trial._trial_id))
    stored.params = {k: v for k, v in stored.params.items() if k not in names}
    stored.distributions = {k: v for k, v in stored.distributions.items() if k not in names}
    storage._set_trial(trial._trial_id, stored)
    cached = trial._cached_frozen_trial
    for name in names:
        cached.params.pop(name, None)
        cached.distributions.pop(name, None)


class Presampler:
    """When and what to sample ahead for a sweep's define-by-run parameters (see above)."""

    SHORT_TRIAL_S = 1.0  # `auto`: mean trial time under which round trips are avoided

    def __init__(self, policy: str, declared: Mapping[str, BaseDistribution]) -> None:
        self.policy = policy  # auto, always, never (the sweep file's worker.presample)
        self.declared = declared
        self._durations: deque[float] = deque(maxlen=50)
        self._space = IntersectionSearchSpace(include_pruned=True)

    def note(self, duration: float) -> None:
        """A finished trial's run time (complete or pruned ones: what a trial costs)."""
        self._durations.append(duration)

    def wanted(self) -> bool:
        if self.policy != "auto":
            return self.policy == "always"
        if not self._durations:
            return False
        return sum(self._durations) / len(self._durations) < self.SHORT_TRIAL_S

    def space(self, study: optuna.Study) -> dict[str, BaseDistribution]:
        """The define-by-run names to sample ahead now: those every finished trial asked with
        the same distribution. Read once per batch of asks (it walks new trials only)."""
        if not self.wanted():
            return {}
        found = self._space.calculate(study)
        return {name: d for name, d in found.items() if name not in self.declared}


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
