"""The controller: sole owner of a sweep's Optuna study, feeding workers through Redis.

The study lives in memory, so samplers and pruners run at in-memory speed; the durable
truth is the trial records in Redis, and a restarted controller rebuilds the study from
them. One controller per sweep holds a Redis lock with a lease; a second one waits.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState as OptunaState

from hq_sweep.controller.fast_tell import tell
from hq_sweep.controller.rebuild import outcome_from_record, rebuild_study
from hq_sweep.controller.samplers_pruners import build_pruner, build_sampler, study_directions
from hq_sweep.controller.space import SearchSpace, build_space
from hq_sweep.errors import HqSweepError, RedisUnavailable
from hq_sweep.messages import Report, TrialOutcome, TrialState, TrialTask
from hq_sweep.queue.admin import ping
from hq_sweep.queue.lock_token import controller_token
from hq_sweep.queue.retry import patiently
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.spec.sweep import SweepSpec

log = logging.getLogger("hq_sweep.controller.loop")
optuna.logging.set_verbosity(optuna.logging.WARNING)


def trial_cap(spec: SweepSpec, grid_size: int | None) -> int | None:
    """How many trials the sweep runs: run_cap, the grid's size, or the smaller; None if
    neither bounds it (random and bayes sweeps without run_cap run until stopped)."""
    caps = [c for c in (spec.run_cap, grid_size) if c is not None]
    return min(caps) if caps else None


class LostLock(HqSweepError):
    """Another controller took the sweep over: this one must stop at once."""


@dataclass(frozen=True, slots=True)
class ControllerOptions:
    lease_ms: int = 10_000
    wait_s: float = 0.05  # longest block on an empty results list
    target_job_s: float = 0.2  # size rq jobs so one carries about this much work
    max_batch: int = 256
    seed: int | None = None


class Controller:
    def __init__(self, queue: SweepQueue, spec: SweepSpec, options: ControllerOptions) -> None:
        self.queue = queue
        self.spec = spec
        self.options = options
        self.space: SearchSpace = build_space(spec)
        seed = options.seed if options.seed is not None else spec.seed
        self.study = optuna.create_study(
            # Named after the sweep: Hyperband's brackets hash the study name, so a restarted
            # controller must rebuild the same one.
            study_name=queue.sweep_id,
            directions=study_directions(spec),
            sampler=build_sampler(spec, self.space, seed),
            pruner=build_pruner(spec),
        )
        self.prunes = not isinstance(self.study.pruner, optuna.pruners.NopPruner)
        self.grid = self.space.grid() if spec.is_grid else None
        self.pending: dict[int, optuna.trial.Trial] = {}
        self.flagged: set[int] = set()
        self.steps_seen: dict[int, set[int]] = {}
        self.next_number = 0
        self.exhausted = False
        self.stop_reason: str | None = None
        self.durations: deque[float] = deque(maxlen=200)
        self.best: tuple[float, int] | None = None
        self.best_dirty = False
        self.token = controller_token(uuid.uuid4().hex)
        self._workers = (0.0, 1)  # (checked at, live workers)
        self._last_renew = self._last_reap = time.monotonic()
        self.priors = spec.flat_priors()
        self.told = 0  # trials whose outcome the study has (rebuilt or told here)

    # ---- limits -------------------------------------------------------------------------

    @property
    def cap(self) -> int | None:
        return trial_cap(self.spec, len(self.grid) if self.grid is not None else None)

    def _remaining(self) -> int | None:
        cap = self.cap
        return None if cap is None else max(0, cap - self.next_number)

    # ---- main loop ----------------------------------------------------------------------

    def run(self, on_tick: Callable[[], None] | None = None) -> str:
        """Drive the sweep to its end; returns why it ended."""
        patiently(self._acquire_lock, "controller lock")
        try:
            patiently(self._start, "rebuild")
            while True:
                try:
                    self.step()
                    self._housekeeping()
                    if self._done():
                        return patiently(self._finish, "finish")
                except RedisUnavailable as exc:
                    self._recover(exc)
                if on_tick is not None:
                    on_tick()
        finally:
            with contextlib.suppress(RedisUnavailable):
                self.queue.lock.release(self.token)

    def _start(self) -> None:
        self.queue.meta.set_running()
        self.next_number = rebuild_study(self)
        self._publish_best()

    def _housekeeping(self) -> None:
        """Every so often: keep the controller lock, and requeue trials whose lease expired."""
        self.keep_lock_fresh()
        now = time.monotonic()
        if now - self._last_reap > min(1.0, self.spec.lease / 4):
            self._last_reap = now
            requeued = self.queue.trials.reap(self.spec.retries + 1)
            if requeued:
                log.info("requeued %d trial(s) whose lease expired", requeued)
            self._wake_if_idle()

    def _wake_if_idle(self) -> None:
        """Ready trials but no job to send a worker for them (its job died with a worker, or
        they were requeued): send wake-up jobs. Extra ones cost a worker one empty claim."""
        queued = self.queue.meta.counts().get("queued", 0)
        if queued and not self.queue.trials.waiting_jobs():
            batch = self._batch_size()
            self.queue.trials.wake(min(self._live_workers(), -(-queued // batch)), batch)

    def keep_lock_fresh(self) -> None:
        """Renew the lock once a third of its lease has passed (also during a long rebuild,
        so a standby does not take over a sweep this controller is still loading)."""
        now = time.monotonic()
        if now - self._last_renew > self.options.lease_ms / 3000:
            self._keep_lock()
            self._last_renew = now

    def _keep_lock(self) -> None:
        if self.queue.lock.renew(self.token, self.options.lease_ms):
            return
        # A restarted Redis may have lost the key: take it again if nobody else did.
        if not self.queue.lock.acquire(self.token, self.options.lease_ms):
            raise LostLock(f"sweep {self.queue.sweep_id}: another controller took over")
        log.warning("controller lock re-acquired after it was lost")

    def _recover(self, exc: Exception) -> None:
        """Redis went away: wait for it, then re-read what may have been lost in flight."""
        log.warning("Redis unreachable (%s); waiting for it", exc)
        patiently(lambda: ping(self.queue.connection), "controller")
        patiently(self._keep_lock, "controller lock")
        patiently(self.reconcile, "reconcile")
        log.warning("Redis is back; sweep goes on")

    def reconcile(self) -> None:
        """Tell trials whose record says finished but whose outcome never reached us."""
        numbers = sorted(self.pending)
        for number, record in zip(numbers, self.queue.trials.records_for(numbers), strict=True):
            outcome = outcome_from_record(number, record)
            if outcome is not None:
                self.tell(outcome)
        self._publish_best()

    def step(self) -> None:
        """One round: read results (and the reports that preceded them), tell, top up."""
        outcomes, reports = self.queue.reports.pop_news(
            1000, self.options.wait_s if self.pending else 0, with_reports=self.prunes)
        if reports:
            self._prune_decisions(reports)
        for outcome in outcomes:
            self.tell(outcome)
        if outcomes:
            self._publish_best()
            self.queue.meta.set_told(self.told)  # study.trials would copy every trial: O(n) a step
        self._top_up()

    def _acquire_lock(self) -> None:
        announced = False
        while not self.queue.lock.acquire(self.token, self.options.lease_ms):
            if not announced:
                log.warning(
                    "sweep %s: another controller holds it; standing by", self.queue.sweep_id
                )
                announced = True
            time.sleep(min(1.0, self.options.lease_ms / 4000))

    def _done(self) -> bool:
        if self.pending:
            return False
        return self.stop_reason is not None or self.exhausted or self._remaining() == 0

    def _finish(self) -> str:
        reason = self.stop_reason or ("exhausted" if self.exhausted else "run_cap")
        if self.grid is not None and self.next_number >= len(self.grid):
            reason = self.stop_reason or "grid exhausted"
        self.queue.meta.set_told(self.told, len(self.study.get_trials(deepcopy=False)))
        self.queue.meta.set_finished(reason)
        self.queue.trials.drop_jobs()
        return reason

    # ---- asking -------------------------------------------------------------------------

    def _batch_size(self) -> int:
        if not self.durations:
            return 1
        mean = sum(self.durations) / len(self.durations)
        return max(1, min(self.options.max_batch, int(self.options.target_job_s / max(mean, 1e-6))))

    def _live_workers(self) -> int:
        checked, count = self._workers
        if time.monotonic() - checked > 2.0:
            count = max(1, self.queue.workers.live(within_s=10.0))
            self._workers = (time.monotonic(), count)
        return count

    def _top_up(self) -> None:
        if self.stop_reason is not None or self.exhausted:
            return
        batch = self._batch_size()
        workers = self._live_workers()
        outstanding = len(self.pending)
        # Two jobs per worker waiting: nobody starves while the next job is asked for.
        want = workers * batch * 3 - outstanding
        if self.spec.parallelism:
            want = min(want, self.spec.parallelism + workers * batch - outstanding)
        remaining = self._remaining()
        if remaining is not None:
            want = min(want, remaining)
        if want <= 0 or (want < batch and outstanding >= workers * batch):
            return
        tasks = [task for task in (self.ask() for _ in range(want)) if task is not None]
        if tasks:
            batches = [tasks[i : i + batch] for i in range(0, len(tasks), batch)]
            self.queue.trials.enqueue(batches, self.next_number)

    def ask(self) -> TrialTask | None:
        fixed = self._fixed_params(self.next_number)
        if fixed is not None:
            self.study.enqueue_trial(self.space.to_latent(fixed), skip_if_exists=False)
        try:
            trial = self.study.ask(self.space.distributions)
        except RuntimeError as exc:  # e.g. BruteForceSampler: nothing left to try
            log.info("sampler exhausted: %s", exc)
            self.exhausted = True
            return None
        number = self.next_number
        self.next_number += 1
        self.pending[number] = trial
        return TrialTask(number, self.space.to_params(trial.params))

    def _fixed_params(self, number: int) -> Mapping[str, Any] | None:
        if self.grid is not None:
            return self.grid[number]
        if number < len(self.priors):
            return self.priors[number]
        return None

    # ---- telling ------------------------------------------------------------------------

    def tell(self, outcome: TrialOutcome) -> None:
        trial = self.pending.pop(outcome.number, None)
        if trial is None:
            return  # already told (e.g. before a restart): each trial is told exactly once
        self.told += 1
        self.flagged.discard(outcome.number)
        self.steps_seen.pop(outcome.number, None)
        if outcome.state is TrialState.COMPLETE and outcome.values:
            self.durations.append(outcome.duration)
            self._tell(trial, OptunaState.COMPLETE, outcome.values)
            self.note_best(outcome.number, outcome.values)
            self._check_target(outcome.values)
        elif outcome.state is TrialState.PRUNED:
            self.durations.append(outcome.duration)
            self._tell(trial, OptunaState.PRUNED, None)
        else:
            self._tell(trial, OptunaState.FAIL, None)

    def _tell(self, trial: optuna.trial.Trial, state: OptunaState, values: Any) -> None:
        try:
            tell(self.study, trial, values, state)
        except RuntimeError as exc:
            # Samplers that call study.stop() when exhausted raise here under ask/tell; the
            # tell itself has been stored by then.
            log.info("sampler stopped the study: %s", exc)
            self.exhausted = True

    def _sign(self) -> float:
        maximize = self.study.directions[0] == optuna.study.StudyDirection.MAXIMIZE
        return 1.0 if maximize else -1.0

    def note_best(self, number: int, values: list[float]) -> None:
        if len(values) != 1:
            return
        sign, value = self._sign(), values[0]
        if self.best is None or sign * value > sign * self.best[0]:
            self.best = (value, number)
            self.best_dirty = True

    def _check_target(self, values: list[float]) -> None:
        metric = self.spec.metric
        target = metric.target if metric is not None else None
        if target is None or len(values) != 1 or not math.isfinite(target):
            return
        if self._sign() * values[0] >= self._sign() * target:
            self.stop_reason = f"target {target} reached"
            self.cancel_queued()

    def cancel_queued(self) -> None:
        numbers = sorted(self.pending)
        if self.queue.trials.cancel(numbers):
            for number, record in zip(numbers, self.queue.trials.records_for(numbers), strict=True):
                if record.get("state") == TrialState.CANCELLED.value:
                    self._tell(self.pending.pop(number), OptunaState.FAIL, None)

    def _publish_best(self) -> None:
        if self.best is None or not self.best_dirty:
            return
        value, number = self.best
        params = self.queue.trials.params(number)
        best = {"number": number, "value": value, "params": self.space.nest(params)}
        self.queue.meta.set_best(best)
        self.best_dirty = False

    def _prune_decisions(self, reports: list[Report]) -> None:
        """Feed reports to the study; ask the pruner once per trial for the whole batch, and
        answer at once the workers waiting on a decision."""
        reported: dict[int, optuna.trial.Trial] = {}
        waiting: dict[int, int] = {}  # trial number -> latest step its worker waits on
        for report in reports:
            trial = self.pending.get(report.number)
            if trial is None:
                continue  # told already
            if report.awaits:
                waiting[report.number] = max(report.step, waiting.get(report.number, report.step))
            seen = self.steps_seen.setdefault(report.number, set())
            if report.step in seen:
                continue  # a step that a retried attempt reports again
            seen.add(report.step)
            trial.report(report.value, report.step)
            reported[report.number] = trial
        prune = [number for number, trial in reported.items()
                 if number not in self.flagged and trial.should_prune()]
        self.flagged.update(prune)
        answers = {number: (step, int(number in self.flagged)) for number, step in waiting.items()}
        if prune or answers:
            self.queue.reports.decide(prune, answers)
