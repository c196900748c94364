"""Rebuild an in-memory Optuna study from the trial records in Redis.

Finished trials are added as they ended; queued and running ones are asked again with
their stored parameters fixed, so the new controller can tell them when they finish.
Results already told before a restart are recognised by the record's state, so nothing
is told twice and nothing is lost. `rebuild_study` fills the study it is given and returns
what the strategy keeps beside it; it knows nothing of the controller.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState as OptunaState

from hq_sweep.controller.define_by_run import sample, stored
from hq_sweep.controller.space import SearchSpace
from hq_sweep.controller.strategy._base import History
from hq_sweep.messages import TrialRecord, TrialState
from hq_sweep.queue.sweep import SweepQueue

log = logging.getLogger("hq_sweep.controller.loop")

_ANNOUNCE_FROM = 10_000  # trials: from here a rebuild takes long enough to say so first
_RENEW_EVERY = 1000  # records between lock checks (loading one takes ~0.1 ms)

_OPTUNA_STATE = {
    TrialState.COMPLETE: OptunaState.COMPLETE,
    TrialState.PRUNED: OptunaState.PRUNED,
    TrialState.FAILED: OptunaState.FAIL,
}


def read_history(queue: SweepQueue, with_intermediate: bool) -> History:
    """Every trial record of the sweep, and (for a pruner) the values its trials reported."""
    upto = int(queue.meta.read().get("next") or 0)
    if upto >= _ANNOUNCE_FROM:
        log.info("sweep %s: rebuilding the study from %d trials", queue.sweep_id, upto)
    records = queue.trials.load_records(upto)
    intermediate: Mapping[int, Mapping[int, float]] = {}
    if with_intermediate:  # pruners judge a trial by every value reported, before too
        live = [r.number for r in records if r.state is not TrialState.CANCELLED]
        intermediate = queue.trials.intermediate_values(live)
    return History(records, intermediate)


@dataclass
class Rebuilt:
    """What a strategy keeps beside the study: the trials it still waits for."""

    pending: dict[int, optuna.trial.Trial] = field(default_factory=dict)
    steps_seen: dict[int, set[int]] = field(default_factory=dict)
    told: int = 0  # finished trials added to the study


class _Loaded(optuna.trial.FrozenTrial):
    """A finished trial built for one `study.add_trial`. The in-memory storage deep-copies
    what it is given, which was most of a rebuild's time (15 s for 100,000 trials); nothing
    else holds this trial, so the stored copy may share its freshly built dicts. That copy
    is a plain FrozenTrial, so every later copy of it is a deep one again."""

    def __deepcopy__(self, memo: dict[int, Any]) -> optuna.trial.FrozenTrial:
        twin = optuna.trial.FrozenTrial.__new__(optuna.trial.FrozenTrial)
        twin.__dict__.update(self.__dict__)
        return twin


def finished_trial(
    distributions: Mapping[str, BaseDistribution],
    latent: dict[str, Any],
    state: TrialState,
    values: list[float] | None,
    intermediate: Mapping[int, float],
) -> optuna.trial.FrozenTrial:
    """What `optuna.trial.create_trial` makes (add_trial validates it). `latent` may hold
    define-by-run parameters too, when `distributions` has theirs."""
    now = datetime.datetime.now()
    return _Loaded(
        number=-1, trial_id=-1, state=_OPTUNA_STATE[state], value=None,
        values=values if state is TrialState.COMPLETE else None,
        datetime_start=now, datetime_complete=now, params=latent,
        distributions={k: distributions[k] for k in latent},
        user_attrs={}, system_attrs={}, intermediate_values=dict(intermediate),
    )


def rebuild_study(study: optuna.Study, space: SearchSpace, history: History,
                  keep_alive: Callable[[], None],
                  on_complete: Callable[[int, list[float]], None]) -> Rebuilt:
    """Load every record into `study`; `on_complete(number, values)` hears of each complete
    trial (for the best so far)."""
    began = time.monotonic()
    rebuilt = Rebuilt()
    for record in history.records:
        if record.number % _RENEW_EVERY == 0:  # a big sweep takes seconds to load: keep the lock
            keep_alive()
        _load_record(study, space, record, history.intermediate.get(record.number, {}),
                     rebuilt, on_complete)
    if history.records:
        log.info("sweep %s: rebuilt %d trials (%d pending) in %.1f s", study.study_name,
                 len(history.records), len(rebuilt.pending), time.monotonic() - began)
    return rebuilt


def _load_record(study: optuna.Study, space: SearchSpace, record: TrialRecord,
                 intermediate: Mapping[int, float], rebuilt: Rebuilt,
                 on_complete: Callable[[int, list[float]], None]) -> None:
    try:
        if record.params is None:
            raise ValueError(record.problem or "no params")
        latent = {k: v for k, v in space.to_latent(record.params).items()
                  if k in space.distributions}
        by_run = stored(record.params, record.distributions)  # define-by-run parameters
    except (KeyError, ValueError, TypeError) as exc:
        log.warning("trial %d: unreadable record skipped (%s)", record.number, exc)
        return
    params = {**latent, **{name: value for name, (value, _) in by_run.items()}}
    outcome = record.outcome()  # a record that does not read otherwise ends as failed
    if outcome is not None and outcome.state.finished:
        distributions = space.distributions if not by_run else {
            **space.distributions, **{name: d for name, (_, d) in by_run.items()}}
        frozen = finished_trial(distributions, params, outcome.state, outcome.values,
                                intermediate)
        study.add_trial(frozen)
        rebuilt.told += 1
        if outcome.state is TrialState.COMPLETE and outcome.values:
            on_complete(record.number, outcome.values)
    elif outcome is None and record.state in (TrialState.QUEUED, TrialState.RUNNING):
        study.enqueue_trial(params, skip_if_exists=False)
        trial = study.ask(space.distributions)
        for name, (_, distribution) in by_run.items():  # as sampled before: fixed now
            sample(trial, name, distribution)
        for step, value in sorted(intermediate.items()):
            trial.report(value, step)
        rebuilt.steps_seen[record.number] = set(intermediate)
        rebuilt.pending[record.number] = trial
