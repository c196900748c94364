"""A sweep's trials as an Optuna study, for `hq_sweep.optimize` and `hq-sweep export
--optuna-storage`.

Each finished trial (complete, pruned, failed) becomes the FrozenTrial Optuna's own
`study.optimize` would have left: its state, values (a pruned single-objective trial's value
is its last intermediate value, as Optuna's), params over their distributions, intermediate
values, user_attrs (the record's metrics: `trial.set_user_attr` values and the extra keys of a
returned dict), start and end times, and system_attrs naming hq-sweep's trial number, attempt
and worker (and a failure's reason). Trials withdrawn before they ran (cancelled) and those
still queued or running are left out; Optuna numbers the rest 0, 1, 2... in order.

Declared parameters are stored over their latent distributions, as the controller's study
holds them; the caller passes the search space (`controller.space.SearchSpace`), since results
does not import the controller. Define-by-run ones keep the distributions their records hold.
"""

from __future__ import annotations

import datetime
import functools
import logging
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import optuna
from optuna.distributions import BaseDistribution, json_to_distribution
from optuna.exceptions import ExperimentalWarning
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState as OptunaState

from hq_sweep.errors import InvalidInput
from hq_sweep.messages import TrialRecord, TrialState
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.spec.sweep import SweepSpec

log = logging.getLogger("hq_sweep.results")

Storage = str | optuna.storages.BaseStorage
NUMBER_ATTR, ATTEMPT_ATTR, WORKER_ATTR, REASON_ATTR = (
    "hq_sweep:number", "hq_sweep:attempt", "hq_sweep:worker", "hq_sweep:reason")
_STATES = {TrialState.COMPLETE: OptunaState.COMPLETE, TrialState.PRUNED: OptunaState.PRUNED,
           TrialState.FAILED: OptunaState.FAIL}


class LatentSpace(Protocol):
    """What the conversion needs of a sweep's search space (`SearchSpace` has it)."""

    @property
    def distributions(self) -> Mapping[str, BaseDistribution]: ...

    def to_latent(self, params: Mapping[str, Any]) -> dict[str, Any]: ...


class StudyExists(InvalidInput):
    """The storage already holds a study of that name: hq-sweep adds to none."""


def check_new_study(storage: Storage, study_name: str) -> None:
    """Refuse a name the storage already holds (before a sweep runs, not after)."""
    found = optuna.storages.get_storage(storage)
    if study_name in {s.study_name for s in found.get_all_studies()}:
        raise StudyExists(
            f"a study named {study_name!r} already exists in {redacted(storage)}: give another "
            f"name, or delete it first (optuna.delete_study(study_name={study_name!r}, "
            "storage=...))")


def redacted(storage: Storage) -> str:
    """A storage as it may be printed: a URL without its password."""
    if not isinstance(storage, str):
        return type(storage).__name__
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", storage)


def directions_of(spec: SweepSpec) -> list[StudyDirection]:
    return [StudyDirection.MAXIMIZE if m.maximize else StudyDirection.MINIMIZE
            for m in spec.objectives()]


def study_of_sweep(queue: SweepQueue, spec: SweepSpec, space: LatentSpace,
                   **create: Any) -> optuna.Study:
    """Every finished trial of the sweep in `queue`, as `to_study` makes it (`create`: its
    keyword arguments: storage, study_name, sampler, pruner)."""
    upto = int(queue.meta.read().get("next") or 0)
    records = queue.trials.load_records(upto)
    intermediate = queue.trials.intermediate_values(r.number for r in records if kept(r))
    return to_study(records, intermediate, spec, space, **create)


def kept(record: TrialRecord) -> bool:
    """Whether the record becomes a trial of the study: it ended, and not withdrawn."""
    outcome = record.outcome()
    return outcome is not None and outcome.state in _STATES


def to_study(records: Iterable[TrialRecord], intermediate: Mapping[int, Mapping[int, float]],
             spec: SweepSpec, space: LatentSpace, *, storage: Storage | None = None,
             study_name: str | None = None, sampler: optuna.samplers.BaseSampler | None = None,
             pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """A new study (in memory, or created in `storage` under `study_name`, which must be
    free) holding the finished trials of `records` in number order."""
    if storage is not None and study_name is not None:
        check_new_study(storage, study_name)
    directions = directions_of(spec)
    study = optuna.create_study(storage=storage, study_name=study_name, directions=directions,
                                sampler=sampler, pruner=pruner)
    names = [m.name for m in spec.objectives()]
    if names != default_metric_names(len(names)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            study.set_metric_names(names)
    trials = [frozen_trial(r, intermediate.get(r.number, {}), space, len(directions))
              for r in sorted(records, key=lambda r: r.number) if kept(r)]
    study.add_trials(trials)
    return study


def default_metric_names(count: int) -> list[str]:
    """What the objective's values are called when nobody named them (Optuna names none)."""
    return ["value"] if count == 1 else [f"value_{i}" for i in range(count)]


def frozen_trial(record: TrialRecord, intermediate: Mapping[int, float], space: LatentSpace,
                 objectives: int) -> FrozenTrial:
    """One kept record as `optuna.trial.create_trial` makes it (a record whose params do not
    read, or lie outside their distributions, becomes a failed trial without params)."""
    outcome = record.outcome()
    assert outcome is not None
    state = _STATES[outcome.state]
    attrs: dict[str, Any] = {NUMBER_ATTR: record.number, ATTEMPT_ATTR: record.attempt,
                             WORKER_ATTR: record.worker}
    if outcome.reason:
        attrs[REASON_ATTR] = outcome.reason
    values = _values(state, outcome.values, intermediate, objectives)
    made = functools.partial(
        optuna.trial.create_trial, user_attrs=dict(outcome.metrics), system_attrs=attrs,
        intermediate_values=dict(intermediate))
    try:
        params, distributions = trial_params(record, space)
        trial = made(state=state, values=values, params=params, distributions=distributions)
    except (KeyError, ValueError, TypeError) as exc:
        log.warning("trial %d: parameters do not read (%s); stored as failed", record.number, exc)
        attrs[REASON_ATTR] = f"unreadable record: {exc}"
        trial = made(state=OptunaState.FAIL)
    trial.datetime_start, trial.datetime_complete = _times(record)
    return trial


def trial_params(record: TrialRecord, space: LatentSpace
                 ) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
    """Declared params (latent) and define-by-run ones, each with its distribution."""
    given = record.params or {}
    params = {k: v for k, v in space.to_latent(given).items() if k in space.distributions}
    distributions = {k: space.distributions[k] for k in params}
    for name, text in (record.distributions or {}).items():
        if name not in given:
            raise ValueError(f"define-by-run parameter {name!r} has no value")
        params[name], distributions[name] = given[name], json_to_distribution(text)
    return params, distributions


def _values(state: OptunaState, values: Sequence[float] | None,
            intermediate: Mapping[int, float], objectives: int) -> list[float] | None:
    if state is OptunaState.COMPLETE:
        return list(values or [])
    if state is OptunaState.PRUNED and objectives == 1 and intermediate:
        last = intermediate[max(intermediate)]  # Optuna's: the last intermediate value
        return None if math.isnan(last) else [last]
    return None


def _times(record: TrialRecord) -> tuple[datetime.datetime, datetime.datetime]:
    """Start and end as Optuna keeps them (naive local times). A worker claims a batch of
    trials at once, so the objective's own run time dates the start best."""
    ended = record.ended_at
    started = record.started_at
    if ended is not None and record.duration is not None:
        started = ended - record.duration
    now = datetime.datetime.now().timestamp()
    end = ended if ended is not None else (started if started is not None else now)
    start = started if started is not None else end
    return datetime.datetime.fromtimestamp(start), datetime.datetime.fromtimestamp(end)
