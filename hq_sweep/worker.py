"""The warm worker: load the user's code once, then run trial after trial without forking.

rq carries batches of trials (JSON only) to a `WarmWorker`, a SimpleWorker subclass, so
`setup()` state and CUDA contexts survive from one trial to the next. rq's job status is
transport; each trial's truth (state, attempt, result) lives in hq-sweep's own keys.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from optuna import TrialPruned
from rq import Queue, SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer

from hq_sweep.messages import Report, TrialOutcome, TrialState, TrialTask, dumps
from hq_sweep.queue import Claim, Finish, SweepQueue
from hq_sweep.trial import AttemptSuperseded, Trial
from hq_sweep.usercode import InvalidResult, Objective, normalize_result

log = logging.getLogger("hq_sweep.worker")

# rq resolves job functions by import path, so the warm worker publishes its runner here for
# the duration of each job (the same pattern rq uses for get_current_job()).
_current_runner: contextvars.ContextVar[TrialRunner] = contextvars.ContextVar("hq_sweep_runner")

_REASON_LIMIT = 4000


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    lease_s: float = 60.0
    heartbeat_s: float = 2.0
    flush_interval_s: float = 0.05  # results wait at most this long to be batched
    poll_s: int = 1  # how often an idle worker checks whether the sweep has ended


class TrialRunner:
    """Runs claimed trials with the warm state and records how each attempt ended."""

    def __init__(
        self,
        queue: SweepQueue,
        name: str,
        objective: Objective,
        state: Any,
        nest: Any,
        metric_names: Sequence[str],
        options: WorkerOptions,
    ) -> None:
        self.queue = queue
        self.name = name
        self.objective = objective
        self.state = state
        self.nest = nest
        self.metric_names = list(metric_names)
        self.options = options
        self.trials_run = 0

    def run_batch(self, tasks: Sequence[TrialTask]) -> int:
        claims = self.queue.claim(tasks, self.name, self.options.lease_s)
        pending: list[Finish] = []
        last_flush = time.monotonic()
        for claim in claims:
            finish = self.execute(claim)
            if finish is not None:
                pending.append(finish)
            if time.monotonic() - last_flush >= self.options.flush_interval_s:
                self.queue.finish(pending)
                pending, last_flush = [], time.monotonic()
        self.queue.finish(pending)
        return len(claims)

    def execute(self, claim: Claim) -> Finish | None:
        task = claim.task

        def reporter(step: int, value: float) -> int:
            return self.queue.report(Report(task.number, claim.attempt, step, value))

        trial = Trial(task.number, claim.attempt, task.params, self.nest(task.params), reporter)
        started = time.perf_counter()
        try:
            state, values, metrics, reason = self._call_objective(trial)
        except AttemptSuperseded:
            return None  # another attempt owns the trial now; our result would be fenced off
        self.trials_run += 1
        if state is TrialState.FAILED:
            log.warning("trial %d failed: %s", task.number, (reason or "").strip().splitlines()[-1])
        outcome = TrialOutcome(
            number=task.number,
            attempt=claim.attempt,
            state=state,
            values=values,
            reason=reason,
            duration=time.perf_counter() - started,
            worker=self.name,
        )
        metrics_json = dumps({**metrics, **trial.user_attrs}) if metrics or trial.user_attrs else ""
        return Finish(outcome, ended_at=time.time(), metrics_json=metrics_json)

    def _call_objective(
        self, trial: Trial
    ) -> tuple[TrialState, list[float] | None, dict[str, Any], str | None]:
        """How the objective ended: (state, values, metrics, reason)."""
        try:
            values, metrics = normalize_result(self.objective(trial, self.state),
                                               self.metric_names)
            return TrialState.COMPLETE, values, metrics, None
        except TrialPruned:
            last = [trial.last_value] if trial.last_value is not None else None
            return TrialState.PRUNED, last, {}, f"pruned at step {trial.last_step}"
        except AttemptSuperseded:
            raise
        except InvalidResult as exc:
            return TrialState.FAILED, None, {}, str(exc)
        except Exception:  # the user's objective may raise anything: it costs this trial only
            return TrialState.FAILED, None, {}, traceback.format_exc()[-_REASON_LIMIT:]

    def sweep_over(self) -> bool:
        return self.queue.state() != "running"


def run_trial_batch(sweep_id: str, tasks: list[Any]) -> int:
    """The rq job function: run a batch of trials on the current warm worker."""
    runner = _current_runner.get(None)
    if runner is None:
        raise RuntimeError("run_trial_batch runs only inside hq-sweep's warm worker")
    if runner.queue.sweep_id != sweep_id:
        raise RuntimeError(
            f"job for sweep {sweep_id!r} reached a worker of {runner.queue.sweep_id!r}"
        )
    return runner.run_batch([TrialTask.from_wire(raw) for raw in tasks])


class WarmWorker(SimpleWorker):
    """rq's non-forking worker, with the warm runner in scope and an end-of-sweep check."""

    def __init__(self, queue: Queue, runner: TrialRunner, name: str) -> None:
        super().__init__(
            [queue],
            name=name,
            connection=queue.connection,
            serializer=JSONSerializer,
            log_job_description=False,
        )
        self.runner = runner

    def execute_job(self, job: Job, queue: Queue) -> None:
        token = _current_runner.set(self.runner)
        try:
            super().execute_job(job, queue)
        finally:
            _current_runner.reset(token)

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        # Block briefly and look at the sweep's state between tries, so workers leave
        # within a second of the sweep ending instead of waiting on an empty queue.
        poll = self.runner.options.poll_s
        while True:
            result = super().dequeue_job_and_maintain_ttl(poll, poll)
            if result is not None or self._stop_requested or self.runner.sweep_over():
                return result


class Heartbeat(threading.Thread):
    """Tells the controller this worker is alive, from a thread the objective cannot block."""

    def __init__(self, queue: SweepQueue, name: str, info: dict[str, Any], every_s: float) -> None:
        super().__init__(name="hq-sweep-heartbeat", daemon=True)
        self.queue, self.worker_name, self.info, self.every_s = queue, name, info, every_s
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                self.queue.heartbeat(self.worker_name, self.info)
            except Exception as exc:  # a Redis hiccup must not kill the heartbeat
                log.warning("heartbeat failed: %s", exc)
            self.stopped.wait(self.every_s)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=self.every_s + 1)
