"""W&B's ``early_terminate: {type: hyperband}``, exactly as W&B's current sweep engine decides.

It is not Optuna's HyperbandPruner (there are no brackets): it is a milestone/quantile rule.
Source: wandb/sweeps 0.3.0 ``src/sweeps/hyperband_stopping.py`` ``hyperband_stop_runs``
(identical on master; its indexing and ``strict`` flag come from wandb/sweeps PR #99, whose
default PR #108 turned to true; 0.2.0 read ``history[b]`` with ``len > b`` instead) and
``src/sweeps/run.py`` (``is_number``, ``SweepRun.metric_history(filter_invalid=True)``).
Checked against ``sweeps.stop_runs`` by ``scripts/check_wandb_hyperband.py``.

With milestones ``b1 <= b2 <= ...`` (:meth:`EarlyTerminate.milestones`, all >= 1) and
``r = 1.0 / eta``:

* A run's *history* is its metric values in logging order, keeping only finite real numbers
  (NaN, inf, None, bools, strings, containers and ints beyond 64 bits are dropped, so they
  shift later positions), each negated when the goal is maximize. Milestone ``b`` is the
  ``b``-th value of that list (``history[b - 1]``), not a step.
* The threshold at milestone ``b`` is ``sorted(v)[int(r * len(v))]`` where ``v`` holds
  ``history[b - 1]`` of every run with at least ``b`` values, whatever its state (running,
  finished, failed, killed...), the judged run included.
* Only running runs are judged, each against one milestone: the last ``b`` with
  ``b <= len(history)``; none reached, no decision. The run stops when its *condition* is
  strictly greater than that threshold (a tie survives): ``history[b - 1]`` when ``strict``,
  else ``min(history)`` over its whole history so far (the best value, later ones included).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Hashable, Iterable, Mapping, Sequence
from numbers import Number
from typing import TYPE_CHECKING, TypeGuard, TypeVar

import numpy as np
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial, TrialState

if TYPE_CHECKING:
    from optuna.study import Study

    from hq_sweep.spec.sections import EarlyTerminate

__all__ = ["WandbHyperbandPruner", "band_threshold", "closest_band", "condition_value",
           "is_number", "metric_history", "should_stop"]

K = TypeVar("K", bound=Hashable)


def is_number(value: object) -> TypeGuard[float]:
    """run.py ``is_number``: ``np.isscalar(x) and np.isfinite(x) and isinstance(x, Number)
    and not isinstance(x, bool)``, False on TypeError."""
    if type(value) is float:  # Optuna's intermediate values: the fast path, same answer
        return math.isfinite(value)
    try:
        return bool(np.isscalar(value) and np.isfinite(value)
                    and isinstance(value, Number) and not isinstance(value, bool))
    except (TypeError, OverflowError):  # W&B catches TypeError; a huge int overflows here
        return False


def metric_history(values: Iterable[object], *, maximize: bool) -> list[float]:
    """A run's history as hyperband_stopping.py reads it:
    ``run.metric_history(metric_name, filter_invalid=True)``, then
    ``if config["metric"]["goal"] == "maximize": history = list(map(lambda x: -x, history))``.
    """
    history = [value for value in values if is_number(value)]
    return [-value for value in history] if maximize else history


def closest_band(milestones: Sequence[int], length: int) -> int:
    """The milestone a running run with ``length`` values is judged at; -1 for none yet.
    hyperband_stopping.py: ``for band, threshold in zip(bands, thresholds): if band <=
    len(history): closest_band = band ... else: break`` (a run with exactly ``b`` values
    is judged at ``b``)."""
    closest = -1
    for band in milestones:
        if band <= length:
            closest = band
        else:
            break
    return closest


def band_threshold(histories: Iterable[Sequence[float]], band: int, eta: float) -> float:
    """hyperband_stopping.py: ``band_values = [h[band - 1] for h in all_run_histories if len(h)
    >= band]``; ``np.inf`` when empty, else ``sorted(band_values)[int(r * len(band_values))]``
    with ``r = 1.0 / eta`` (``int(r * n)`` is not always ``int(n / eta)``: eta 1.1, n 33)."""
    index = band - 1  # milestone b is the b-th value
    values = [history[index] for history in histories if len(history) >= band]
    if not values:
        return math.inf
    r = 1.0 / eta
    return sorted(values)[int(r * len(values))]


def condition_value(history: Sequence[float], band: int, *, strict: bool) -> float:
    """What a running run's history shows at its milestone. hyperband_stopping.py: ``condition_val
    = min(history)``; ``if et_config.get("strict") is True: condition_val =
    history[closest_band - 1]``; it stops ``if condition_val > closest_threshold``."""
    return history[band - 1] if strict else min(history)


def should_stop(
    histories: Mapping[K, Iterable[object]],
    running: Collection[K],
    *,
    milestones: Sequence[int],
    eta: float,
    strict: bool,
    maximize: bool,
) -> set[K]:
    """``hyperband_stop_runs`` over plain data: ``histories`` maps every run of the sweep (any
    state) to its raw logged metric values in order; ``running`` names the runs whose state is
    running (the only ones W&B stops). Returns the runs W&B would stop now."""
    metric = {key: metric_history(values, maximize=maximize) for key, values in histories.items()}
    # `all_run_histories`: every run, whatever its state, whose history is not empty.
    everyone = [history for history in metric.values() if history]
    thresholds: dict[int, float] = {}  # W&B computes all bands up front; same values, lazily
    stop: set[K] = set()
    for key in running:
        history = metric.get(key, [])
        band = closest_band(milestones, len(history))
        if band == -1:  # "no bands apply yet"
            continue
        if band not in thresholds:
            thresholds[band] = band_threshold(everyone, band, eta)
        if condition_value(history, band, strict=strict) > thresholds[band]:
            stop.add(key)
    return stop


class WandbHyperbandPruner(BasePruner):
    """W&B's hyperband early termination for an Optuna study (see the module docstring).

    A trial's history is its ``intermediate_values`` ordered by step, NaN and infinities
    dropped as W&B drops them from a run's logged metric. ``prune`` answers as
    ``hyperband_stop_runs`` would for that trial at this moment, over all the study's trials:
    COMPLETE, PRUNED, FAIL and RUNNING alike count towards thresholds (W&B counts every run);
    only a RUNNING trial can be stopped. Each call costs one pass over the trials (histories
    are cached per trial and number of reported values) and one sort at one milestone.
    """

    def __init__(self, early_terminate: EarlyTerminate, *, maximize: bool) -> None:
        self.milestones: tuple[int, ...] = tuple(early_terminate.milestones())
        self.eta: float = early_terminate.eta
        self.strict: bool = early_terminate.strict
        self.maximize = maximize
        self._cache: dict[tuple[int, int], tuple[int, list[float]]] = {}

    def history(self, trial: FrozenTrial) -> list[float]:
        """The trial's metric history as W&B reads a run's (ordered by step, filtered,
        negated when maximizing). Reported values never change, so the count keys the cache."""
        values = trial.intermediate_values
        key = (trial._trial_id, trial.number)
        cached = self._cache.get(key)
        if cached is not None and cached[0] == len(values):
            return cached[1]
        history = metric_history((values[step] for step in sorted(values)),
                                 maximize=self.maximize)
        self._cache[key] = (len(values), history)
        return history

    def prune(self, study: Study, trial: FrozenTrial) -> bool:
        if trial.state != TrialState.RUNNING:  # W&B: `if run.state == RunState.running`
            return False
        history = self.history(trial)
        band = closest_band(self.milestones, len(history))
        if band == -1:
            return False
        threshold = band_threshold(self._histories_at(study, trial, history, band), band,
                                   self.eta)
        return condition_value(history, band, strict=self.strict) > threshold

    def _histories_at(self, study: Study, trial: FrozenTrial, own: list[float],
                      band: int) -> list[list[float]]:
        """Every trial's history that reaches ``band`` (the judged trial's from ``own``)."""
        found = [own]
        for other in study.get_trials(deepcopy=False):
            if other.number == trial.number or len(other.intermediate_values) < band:
                continue  # fewer reports than band: its history cannot be longer either
            history = self.history(other)
            if len(history) >= band:
                found.append(history)
        return found
