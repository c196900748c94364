"""Optuna's ask/tell as a `Strategy`: the study in memory, samplers and pruners at in-memory
speed, grid points and priors asked first with their parameters fixed."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, distribution_to_json, json_to_distribution
from optuna.trial import TrialState as OptunaState

from hq_sweep.controller.define_by_run import (
    Presampler,
    forget,
    record_params,
    resample,
    sample,
)
from hq_sweep.controller.fast_tell import tell
from hq_sweep.controller.rebuild import rebuild_study
from hq_sweep.controller.samplers_pruners import (
    build_pruner,
    build_sampler,
    learns_from_results,
    study_directions,
)
from hq_sweep.controller.space import SearchSpace, build_space
from hq_sweep.controller.strategy._base import Best, Decisions, History, Stop, Suggested
from hq_sweep.messages import (
    Action,
    Decision,
    Report,
    SuggestAnswer,
    SuggestRequest,
    TrialOutcome,
    TrialState,
    TrialTask,
)
from hq_sweep.spec.sweep import SweepSpec

log = logging.getLogger("hq_sweep.controller.loop")
_RAN = frozenset({TrialState.COMPLETE, TrialState.PRUNED})  # what a trial costs, in time


class OptunaAskTell:
    """One Optuna study, asked ahead and told each outcome once (a `Strategy`)."""

    def __init__(self, spec: SweepSpec, study_name: str, seed: int | None = None, *,
                 sampler: optuna.samplers.BaseSampler | None = None,
                 pruner: optuna.pruners.BasePruner | None = None) -> None:
        """The sampler and pruner the spec names, unless given as objects (the Python API
        takes a user's own: the controller then runs in the user's process)."""
        self.space: SearchSpace = build_space(spec)
        self.study = optuna.create_study(
            # Named after the sweep: Hyperband's brackets hash the study name, so a restarted
            # controller must rebuild the same one.
            study_name=study_name,
            directions=study_directions(spec),
            sampler=sampler or build_sampler(spec, self.space, spec.seed if seed is None else seed),
            pruner=pruner or build_pruner(spec),
        )
        self.wants_reports = not isinstance(self.study.pruner, optuna.pruners.NopPruner)
        # Ahead of the running trials, one more per worker hides the claim's latency; more
        # would leave a learning sampler blind (Optuna's own distributed mode: one each).
        self.ask_ahead = 2 if learns_from_results(self.study.sampler) else None
        self.presampler = (Presampler(spec.worker.presample, self.space.distributions)
                           if spec.worker is not None else None)  # define-by-run possible
        self.grid = self.space.grid() if spec.is_grid else None
        self.priors = spec.flat_priors()
        self.target = spec.metric.target if spec.metric is not None else None
        maximize = self.study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
        self.sign = 1.0 if maximize else -1.0
        self.pending_trials: dict[int, optuna.trial.Trial] = {}  # asked, not yet told
        self.flagged: set[int] = set()  # decided to prune (told once, answered every time)
        self.steps_seen: dict[int, set[int]] = {}
        self._told = 0
        self._best: Best | None = None
        self._stop: Stop | None = None

    # ---- queries ------------------------------------------------------------------------

    @property
    def pending(self) -> Collection[int]:
        return self.pending_trials.keys()

    @property
    def told(self) -> int:
        return self._told

    @property
    def best(self) -> Best | None:
        return self._best

    @property
    def stop(self) -> Stop | None:
        return self._stop

    def held(self) -> int:
        return len(self.study.get_trials(deepcopy=False))

    # ---- restore, ask -------------------------------------------------------------------

    def restore(self, history: History, keep_alive: Callable[[], None]) -> None:
        rebuilt = rebuild_study(self.study, self.space, history, keep_alive, self._note)
        self.pending_trials, self.steps_seen = rebuilt.pending, rebuilt.steps_seen
        self._told = rebuilt.told
        if self.grid is not None and len(history.records) >= len(self.grid):
            self._stopping("grid exhausted")
        if self._best is not None:  # reached before the restart: stop again
            self._check_target(self._best.value)

    def ask(self, numbers: range) -> list[TrialTask]:
        tasks: list[TrialTask] = []
        ahead = self.presampler.space(self.study) if self.presampler is not None else {}
        ahead_json = {name: distribution_to_json(d) for name, d in ahead.items()}  # once
        for number in numbers:
            if self._stop is not None:
                break
            task = self._ask(number, ahead, ahead_json)
            if task is None:
                break
            tasks.append(task)
            if self.grid is not None and number + 1 >= len(self.grid):
                self._stopping("grid exhausted")
        return tasks

    def _ask(self, number: int, ahead: Mapping[str, BaseDistribution],
             ahead_json: Mapping[str, str]) -> TrialTask | None:
        """Trial `number`, its declared parameters sampled, and the define-by-run ones in
        `ahead` too (as its objective's `suggest_*` would: they go with the task)."""
        fixed = self._fixed_params(number)
        if fixed is not None:
            self.study.enqueue_trial(self.space.to_latent(fixed), skip_if_exists=False)
        try:
            trial = self.study.ask(self.space.distributions)
        except RuntimeError as exc:  # e.g. BruteForceSampler: nothing left to try
            log.info("sampler exhausted: %s", exc)
            self._stopping("exhausted")
            return None
        self.pending_trials[number] = trial
        if self.presampler is None:
            return TrialTask(number, self.space.to_params(trial.params))
        for name, distribution in ahead.items():
            try:
                sample(trial, name, distribution)
            except ValueError as exc:  # the study refuses it now: the objective will ask
                log.debug("trial %d: %s not sampled ahead (%s)", number, name, exc)
        latent = trial.params
        params = self.space.to_params(latent)
        sampled = [name for name in ahead if name in latent]
        params.update((name, latent[name]) for name in sampled)
        return TrialTask(number, params, {name: ahead_json[name] for name in sampled})

    def suggest(self, request: SuggestRequest) -> Suggested:
        """Sample a define-by-run parameter with the pending trial's own `suggest_*` (again,
        when it was sampled ahead from another distribution than the objective asks)."""
        trial = self.pending_trials.get(request.number)
        if trial is None:
            return Suggested(SuggestAnswer(request.name, stale=True))
        try:
            distribution = json_to_distribution(request.distribution)
            before = trial.distributions.get(request.name)
            if before is not None and before != distribution:
                value = resample(trial, request.name, distribution)
            else:
                value = sample(trial, request.name, distribution)
        except (ValueError, TypeError, KeyError) as exc:  # Optuna's own refusal, as the
            return Suggested(SuggestAnswer(request.name, error=str(exc)))  # objective sees it
        params, distributions = record_params(self.space, trial)
        return Suggested(SuggestAnswer(request.name, value), params, distributions)

    def _fixed_params(self, number: int) -> Mapping[str, Any] | None:
        if self.grid is not None:
            return self.grid[number]
        if number < len(self.priors):
            return self.priors[number]
        return None

    # ---- tell ---------------------------------------------------------------------------

    def tell(self, outcome: TrialOutcome) -> bool:
        trial = self.pending_trials.pop(outcome.number, None)
        if trial is None:
            return False  # already told (e.g. before a restart): each trial is told once
        self.flagged.discard(outcome.number)
        self.steps_seen.pop(outcome.number, None)
        if outcome.unused:  # sampled ahead, never asked by the objective
            forget(trial, outcome.unused)
        if outcome.state is TrialState.CANCELLED:
            self._tell(trial, OptunaState.FAIL, None)  # withdrawn: in the study, not told
            return True
        self._told += 1
        if self.presampler is not None and outcome.state in _RAN:
            self.presampler.note(outcome.duration)
        if outcome.state is TrialState.COMPLETE and outcome.values:
            self._tell(trial, OptunaState.COMPLETE, outcome.values)
            self._note(outcome.number, outcome.values)
            if len(outcome.values) == 1:
                self._check_target(outcome.values[0])
        elif outcome.state is TrialState.PRUNED:
            self._tell(trial, OptunaState.PRUNED, None)
        else:
            self._tell(trial, OptunaState.FAIL, None)
        return True

    def _tell(self, trial: optuna.trial.Trial, state: OptunaState, values: Any) -> None:
        try:
            tell(self.study, trial, values, state)
        except RuntimeError as exc:
            # Samplers that call study.stop() when exhausted raise here under ask/tell; the
            # tell itself has been stored by then.
            log.info("sampler stopped the study: %s", exc)
            self._stopping("exhausted")

    def _note(self, number: int, values: list[float]) -> None:
        """Keep the best single-objective trial (the first of equals)."""
        if len(values) != 1:
            return
        if self._best is None or self.sign * values[0] > self.sign * self._best.value:
            self._best = Best(values[0], number)

    def _check_target(self, value: float) -> None:
        target = self.target
        if target is not None and math.isfinite(target) and self.sign * value >= self.sign * target:
            self._stop = Stop(f"target {target} reached", withdraw=True)  # over any other

    def _stopping(self, reason: str) -> None:
        if self._stop is None:
            self._stop = Stop(reason)

    # ---- decide -------------------------------------------------------------------------

    def decide(self, reports: Sequence[Report]) -> Decisions:
        """Feed reports to the study; ask the pruner once per trial for the whole batch, and
        answer every report that waits (go on, or prune)."""
        reported: dict[int, tuple[optuna.trial.Trial, int]] = {}  # trial, latest step fed
        waiting: dict[int, int] = {}  # trial number -> latest step its worker waits on
        for report in reports:
            trial = self.pending_trials.get(report.number)
            if trial is None:
                continue  # told already
            if report.awaits:
                waiting[report.number] = max(report.step, waiting.get(report.number, report.step))
            seen = self.steps_seen.setdefault(report.number, set())
            if report.step in seen:
                continue  # a step that a retried attempt reports again
            seen.add(report.step)
            trial.report(report.value, report.step)
            latest = reported.get(report.number, (trial, report.step))[1]
            reported[report.number] = (trial, max(latest, report.step))
        flags = {number: Decision(step, Action.PRUNE) for number, (trial, step) in reported.items()
                 if number not in self.flagged and trial.should_prune()}
        self.flagged.update(flags)
        answers = {number: Decision(step, Action.PRUNE if number in self.flagged
                                    else Action.CONTINUE) for number, step in waiting.items()}
        return Decisions(flags, answers)
