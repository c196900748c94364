"""Rebuild a controller's in-memory Optuna study from the trial records in Redis.

Finished trials are added as they ended; queued and running ones are asked again with
their stored parameters fixed, so the new controller can tell them when they finish.
Results already told before a restart are recognised by the record's state, so nothing
is told twice and nothing is lost.
"""

from __future__ import annotations

import datetime
import json
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import TrialState as OptunaState

from hq_sweep.messages import FINISHED_STATES, TrialOutcome, TrialState

if TYPE_CHECKING:
    from hq_sweep.controller.loop import Controller

log = logging.getLogger("hq_sweep.controller.loop")

_ANNOUNCE_FROM = 10_000  # trials: from here a rebuild takes long enough to say so first
_RENEW_EVERY = 1000  # records between lock checks (loading one takes ~0.1 ms)

_OPTUNA_STATE = {
    TrialState.COMPLETE: OptunaState.COMPLETE,
    TrialState.PRUNED: OptunaState.PRUNED,
    TrialState.FAILED: OptunaState.FAIL,
}


def _state(record: dict[str, str]) -> TrialState | None:
    try:
        return TrialState(record.get("state", ""))
    except ValueError:
        return None


def outcome_from_record(number: int, record: dict[str, str]) -> TrialOutcome | None:
    """The outcome a finished record stands for (None while it is not finished)."""
    state = _state(record)
    if state not in FINISHED_STATES:
        return None
    try:
        values = json.loads(record["values"]) if record.get("values") else None
        return TrialOutcome(number, int(record.get("attempt") or 0), TrialState(state),
                            values=values, reason=record.get("reason") or None)
    except ValueError as exc:
        log.warning("trial %d: unreadable finished record (%s)", number, exc)
        return TrialOutcome(number, 0, TrialState.FAILED, reason="unreadable record")


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
    record: dict[str, str],
    intermediate: dict[int, float],
) -> optuna.trial.FrozenTrial:
    """What `optuna.trial.create_trial` makes (add_trial validates it)."""
    values = json.loads(record["values"]) if state is TrialState.COMPLETE else None
    now = datetime.datetime.now()
    return _Loaded(
        number=-1, trial_id=-1, state=_OPTUNA_STATE[state], value=None, values=values,
        datetime_start=now, datetime_complete=now, params=latent,
        distributions={k: distributions[k] for k in latent},
        user_attrs={}, system_attrs={}, intermediate_values=dict(intermediate),
    )


def rebuild_study(controller: Controller) -> int:
    """Load every trial record into `controller`; returns the next trial number."""
    queue = controller.queue
    began = time.monotonic()
    upto = int(queue.meta.read().get("next") or 0)
    if upto >= _ANNOUNCE_FROM:
        log.info("sweep %s: rebuilding the study from %d trials", queue.sweep_id, upto)
    records = queue.trials.load_records(upto)
    # Pruners judge a trial by every value reported so far, before the restart too.
    live = [n for n, r in enumerate(records) if _state(r) is not TrialState.CANCELLED]
    intermediate = queue.trials.intermediate_values(live) if controller.prunes else {}
    for number, record in enumerate(records):
        if number % _RENEW_EVERY == 0:  # a big sweep takes seconds to load: keep the lock
            controller.keep_lock_fresh()
        _load_record(controller, number, record, intermediate.get(number, {}))
    if upto:
        log.info("sweep %s: rebuilt %d trials (%d pending) in %.1f s", queue.sweep_id, upto,
                 len(controller.pending), time.monotonic() - began)
    return upto


def _load_record(controller: Controller, number: int, record: dict[str, str],
                 intermediate: dict[int, float]) -> None:
    space, state = controller.space, _state(record)
    try:
        params = json.loads(record["params"])
        latent = {k: v for k, v in space.to_latent(params).items() if k in space.distributions}
    except (KeyError, ValueError, TypeError) as exc:
        log.warning("trial %d: unreadable record skipped (%s)", number, exc)
        return
    if state in FINISHED_STATES:
        assert state is not None
        frozen = finished_trial(space.distributions, latent, state, record, intermediate)
        controller.study.add_trial(frozen)
        controller.told += 1
        if state is TrialState.COMPLETE:
            controller.note_best(number, frozen.values)
    elif state in (TrialState.QUEUED, TrialState.RUNNING):
        controller.study.enqueue_trial(latent, skip_if_exists=False)
        trial = controller.study.ask(space.distributions)
        for step, value in sorted(intermediate.items()):
            trial.report(value, step)
        controller.steps_seen[number] = set(intermediate)
        controller.pending[number] = trial
