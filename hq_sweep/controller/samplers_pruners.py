"""The sampler, pruner and directions a :class:`~hq_sweep.spec.sweep.SweepSpec` names, as Optuna
objects; option mistakes become one path-precise line each (``sampler.options.x: ...``)."""

from __future__ import annotations

import importlib.util
import inspect
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.pruners import BasePruner, NopPruner
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import StudyDirection
from pydantic import ValidationError

from hq_sweep.controller.space import SearchSpace
from hq_sweep.controller.wandb_hyperband import WandbHyperbandPruner
from hq_sweep.spec.issues import format_loc, issues_from_validation_error
from hq_sweep.spec.sweep import PrunerSpec, SpecError, SweepSpec

__all__ = ["WeightedRandomSampler", "build_pruner", "build_sampler", "learns_from_results",
           "study_directions"]



class WeightedRandomSampler(RandomSampler):
    """RandomSampler that draws categorical values with W&B's ``probabilities``."""

    def __init__(self, weights: Mapping[str, Sequence[float]], seed: int | None = None) -> None:
        super().__init__(seed=seed)
        self._weights = {k: np.asarray(w, dtype=float) / math.fsum(w) for k, w in weights.items()}

    def sample_independent(self, study: optuna.Study, trial: optuna.trial.FrozenTrial,
                           param_name: str, param_distribution: BaseDistribution) -> Any:
        w = self._weights.get(param_name)
        if (w is None or not isinstance(param_distribution, CategoricalDistribution)
                or len(w) != len(param_distribution.choices)):
            return super().sample_independent(study, trial, param_name, param_distribution)
        return param_distribution.to_external_repr(int(self._rng.rng.choice(len(w), p=w)))


def _needs(module: str, line: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise SpecError([line])


def _check_options(cls: type[Any], kwargs: Mapping[str, Any], where: str) -> None:
    """One error line per option the class does not take, or requires and lacks."""
    params = {n: prm for n, prm in inspect.signature(cls.__init__).parameters.items()
              if n != "self" and prm.kind not in (prm.VAR_POSITIONAL, prm.VAR_KEYWORD)}
    known = ", ".join(n for n in params if n != "seed") or "none"
    lines = [f"{where}.{k}: unknown option for {cls.__name__} (it takes {known})"
             for k in kwargs if k not in params]
    lines += [f"{where}.{n}: required by {cls.__name__}" for n, prm in params.items()
              if prm.default is prm.empty and n not in kwargs]
    if lines:
        raise SpecError(lines)


def _construct(cls: type[Any], kwargs: dict[str, Any], where: str) -> Any:
    """cls(**kwargs), as one-line SpecErrors when the options do not fit."""
    _check_options(cls, kwargs, where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise SpecError([f"{where}: {exc}".replace("\n", " ")]) from None


def build_sampler(spec: SweepSpec, space: SearchSpace, seed: int | None = None) -> BaseSampler:
    """The Optuna sampler for the spec. Seed: the argument, else sampler.seed, else seed.

    For grid sweeps (method or sampler grid) the controller walks ``space.grid()`` itself
    (trial n gets ``space.grid_point(n)``) and this returns a RandomSampler placeholder:
    Optuna's GridSampler stops the study from inside ``tell`` and cannot be asked ahead."""
    options = dict(spec.sampler.options) if spec.sampler is not None else {}
    if seed is None:
        seed = spec.sampler.seed if spec.sampler is not None and spec.sampler.seed is not None \
            else spec.seed
    name = spec.sampler_name
    samplers = optuna.samplers
    if name in ("grid", "random"):
        _check_options(RandomSampler, {**options, "seed": seed}, "sampler.options")
        if space.weights and name == "random":
            return WeightedRandomSampler(space.weights, seed=seed)
        return RandomSampler(seed=seed)
    if name == "tpe":
        options = {"multivariate": True, "constant_liar": True, **options}
    elif name == "gp":
        _needs("torch", "sampler.name: 'gp' needs PyTorch: pip install torch")
    elif name == "cmaes":
        _needs("cmaes", "sampler.name: 'cmaes' needs the cmaes package: pip install cmaes")
    classes = {"tpe": samplers.TPESampler, "gp": samplers.GPSampler,
               "cmaes": samplers.CmaEsSampler, "qmc": samplers.QMCSampler,
               "nsgaii": samplers.NSGAIISampler, "bruteforce": samplers.BruteForceSampler}
    sampler: BaseSampler = _construct(classes[name], {**options, "seed": seed}, "sampler.options")
    return sampler


def learns_from_results(sampler: BaseSampler) -> bool:
    """Whether the sampler's next sample depends on the results told so far: asked far ahead
    of them, it samples blind (TPE asked 60 trials ahead of 4 results is random search).
    Random, QMC, grid and brute force do not learn so; an unknown sampler (a user's own,
    through the Python API) is taken to."""
    free = (RandomSampler, optuna.samplers.QMCSampler, optuna.samplers.GridSampler,
            optuna.samplers.BruteForceSampler)
    return not isinstance(sampler, free)


def build_pruner(spec: SweepSpec) -> BasePruner:
    """The Optuna pruner named by ``pruner:``; W&B's ``early_terminate`` as a
    :class:`WandbHyperbandPruner` (judged on the first objective); NopPruner when neither."""
    if spec.early_terminate is not None:
        maximize = spec.objectives()[0].maximize
        return WandbHyperbandPruner(spec.early_terminate, maximize=maximize)
    if spec.pruner is None:
        return NopPruner()
    return _pruner(spec.pruner, "pruner")


def _pruner(ps: PrunerSpec, where: str) -> BasePruner:
    pruners = optuna.pruners
    classes: dict[str, type[BasePruner]] = {
        "median": pruners.MedianPruner, "percentile": pruners.PercentilePruner,
        "successive_halving": pruners.SuccessiveHalvingPruner,
        "hyperband": pruners.HyperbandPruner, "threshold": pruners.ThresholdPruner,
        "patient": pruners.PatientPruner, "wilcoxon": pruners.WilcoxonPruner,
        "nop": NopPruner}
    options = dict(ps.options)
    if ps.name == "patient":
        wrapped = options.get("wrapped_pruner")
        options["wrapped_pruner"] = None if wrapped is None else _wrapped(wrapped, where)
    pruner: BasePruner = _construct(classes[ps.name], options, f"{where}.options")
    return pruner


def _wrapped(raw: Any, where: str) -> BasePruner:
    inner = f"{where}.options.wrapped_pruner"
    try:
        return _pruner(PrunerSpec.model_validate(raw), inner)
    except ValidationError as exc:
        found, _ = issues_from_validation_error(exc)
        raise SpecError([f"{format_loc((inner, *loc))}: {msg}" for loc, msg in found]) from None


def study_directions(spec: SweepSpec) -> list[StudyDirection]:
    return [StudyDirection.MAXIMIZE if m.maximize else StudyDirection.MINIMIZE
            for m in spec.objectives()]
