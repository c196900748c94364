"""Running one claimed trial: call the objective, bound its time, and say how it ended."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from optuna import TrialPruned

from hq_sweep.messages import Report, TrialOutcome, TrialState, dumps
from hq_sweep.queue.retry import TRANSIENT
from hq_sweep.queue.sweep_queue import Claim, Finish, SweepQueue
from hq_sweep.worker.decision_wait import DecisionWaits
from hq_sweep.worker.trial import AttemptSuperseded, Trial
from hq_sweep.worker.usercode import InvalidResult, Objective, normalize_result

log = logging.getLogger("hq_sweep")
_REASON_LIMIT = 4000


class TrialTimeout(BaseException):
    """Raised inside the objective when trial_timeout passes.

    A BaseException, so a user's `except Exception:` cannot swallow it.
    """


@dataclass(frozen=True, slots=True)
class Ending:
    state: TrialState
    values: list[float] | None = None
    metrics: dict[str, Any] | None = None
    reason: str | None = None
    kind: str = ""  # failure kind, counted per kind for `hq-sweep status`


def _failure_kind(exc: BaseException) -> str:
    name = type(exc).__name__
    return "timeout" if "Timeout" in name else name


class ReportBuffer:
    """Intermediate values on their way to Redis, batched so reporting never stalls a trial.

    A report is sent at once when the last send is `interval_s` old (an epoch-long trial
    reports immediately); a burst of quick reports travels in one round trip. The prune
    decision comes back with the send, so a trial learns it by its next report at the latest.
    Where waiting pays off (see decision_wait), a report goes out at once and waits briefly
    for the controller's decision on this very step, so a trial pruned at a rung stops there
    instead of training one more step.
    """

    def __init__(self, queue: SweepQueue, feed_pruner: bool) -> None:
        self.queue, self.feed_pruner = queue, feed_pruner
        # With a pruner, decisions must come back within an epoch: send whenever 5 ms have
        # passed (at most one round trip per 5 ms of training, ~3%); without one, batch more.
        self.interval_s = 0.005 if feed_pruner else 0.05
        self.items: list[Report] = []
        self.verdicts: dict[int, int] = {}  # trial number -> -1 superseded, 1 prune, 0 go on
        self.last_send = 0.0
        self.lock = threading.Lock()
        self.waits = DecisionWaits()
        self.last_steps: dict[int, int] = {}  # trial number -> step of its previous report
        self.unreachable = False  # the last send failed: Redis is away

    def add(self, report: Report, step_s: float = 0.0) -> int:
        """Queue `report` (which ended a step of `step_s` seconds); the verdict known now."""
        if not self.feed_pruner:  # the common, hot path: append, send now and then
            self._queue_up(report, at_once=False)
            return self.verdicts.get(report.number, 0)
        wait_s = self.waits.budget(report.step, step_s)
        if wait_s:
            report = report._replace(awaits=True)
        self._queue_up(report, at_once=bool(wait_s))
        verdict = self.verdicts.get(report.number, 0)
        decided_step = self.last_steps.get(report.number, report.step)  # a late decision's
        if wait_s and verdict == 0 and not self.unreachable:
            verdict, decided_step = self._await(report, wait_s), report.step
        self.last_steps[report.number] = report.step
        if verdict >= 0:
            self.waits.observe(report.step, pruned=False)
            if verdict == 1:
                self.waits.observe(decided_step, pruned=True)
        return verdict

    def _queue_up(self, report: Report, at_once: bool) -> None:
        with self.lock:
            self.items.append(report)
        if at_once or time.monotonic() - self.last_send >= self.interval_s:
            try:
                self.send()
                self.unreachable = False
            except TRANSIENT as exc:  # a Redis blip must not cost the trial: the next send
                if not self.unreachable:  # or the flush delivers them; say so once
                    log.warning("reports wait for Redis (%s); training goes on", exc)
                    self.unreachable = True

    def _await(self, report: Report, wait_s: float) -> int:
        began = time.monotonic()
        try:
            verdict = self.queue.await_decision(report.number, report.step, wait_s)
        except TRANSIENT:
            verdict = None  # no decision now; it comes with a later report
        answered = verdict is not None
        self.waits.waited(time.monotonic() - began, answered)
        if verdict:
            self.verdicts[report.number] = verdict
        return verdict or 0

    def send(self) -> None:
        """Send what is buffered; on a Redis error the reports stay buffered (resending is
        harmless: values are keyed by step, and the controller skips steps it has seen)."""
        with self.lock:
            items, self.items = self.items, []
        self.last_send = time.monotonic()
        if not items:
            return
        try:
            verdicts = self.queue.report_many(items, self.feed_pruner)
        except TRANSIENT:
            with self.lock:
                self.items[:0] = items
            raise
        for number, verdict in verdicts.items():
            if verdict != 0:
                self.verdicts[number] = verdict

    def forget(self, number: int) -> None:
        self.verdicts.pop(number, None)
        self.last_steps.pop(number, None)


class TrialExecutor:
    """Calls `objective(trial, state)` for one claim at a time (in the main thread)."""

    def __init__(self, queue: SweepQueue, worker: str, objective: Objective, state: Any,
                 nest: Callable[[dict[str, Any]], dict[str, Any]],
                 metric_names: Sequence[str], timeout_s: float | None,
                 feed_pruner: bool = False) -> None:
        self.queue, self.worker, self.objective, self.state = queue, worker, objective, state
        self.nest = nest
        self.metric_names = list(metric_names)
        self.timeout_s = timeout_s
        self.current: Claim | None = None
        self.started = 0.0
        self.last_report_at = 0.0
        # Written by the heartbeat thread, read on every report: a set's add and `in` are
        # atomic, so no lock on this hot path.
        self._superseded: set[int] = set()
        self.reports = ReportBuffer(queue, feed_pruner)

    def execute(self, claim: Claim) -> Finish | None:
        """Run one trial; None when another attempt took it over meanwhile."""
        task = claim.task
        trial = Trial(task.number, claim.attempt, task.params, self.nest(task.params),
                      lambda step, value: self._report(claim, step, value))
        self.current, self.started = claim, time.monotonic()
        self.last_report_at = self.started
        try:
            ending = self._call(trial)
        except AttemptSuperseded:
            return None
        finally:
            self.current = None
            self.reports.forget(task.number)
        outcome = TrialOutcome(
            number=task.number, attempt=claim.attempt, state=ending.state, values=ending.values,
            reason=ending.reason, duration=time.monotonic() - self.started, worker=self.worker,
        )
        extra = {**(ending.metrics or {}), **trial.user_attrs}
        return Finish(outcome, ended_at=time.time(), metrics_json=dumps(extra) if extra else "",
                      failure_kind=ending.kind)

    def _call(self, trial: Trial) -> Ending:
        try:
            with self._alarm():
                result = self.objective(trial, self.state)
            values, metrics = normalize_result(result, self.metric_names)
            return Ending(TrialState.COMPLETE, values, metrics)
        except TrialPruned:
            last = [trial.last_value] if trial.last_value is not None else None
            return Ending(TrialState.PRUNED, last, reason=f"pruned at step {trial.last_step}")
        except AttemptSuperseded:
            raise
        except TrialTimeout:
            return Ending(TrialState.FAILED, reason=f"timeout: exceeded trial_timeout of "
                          f"{self.timeout_s:g} s", kind="timeout")
        except InvalidResult as exc:
            return Ending(TrialState.FAILED, reason=str(exc), kind="invalid result")
        except Exception as exc:  # the user's objective may raise anything: it costs this trial
            return Ending(TrialState.FAILED, reason=traceback.format_exc()[-_REASON_LIMIT:],
                          kind=_failure_kind(exc))

    @contextlib.contextmanager
    def _alarm(self) -> Iterator[None]:
        """SIGALRM interrupts Python code in the main thread once trial_timeout passes."""
        if not self.timeout_s:
            yield
            return

        def on_alarm(signum: int, frame: FrameType | None) -> None:
            raise TrialTimeout()

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, self.timeout_s)
        try:
            yield
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)

    def _report(self, claim: Claim, step: int, value: float) -> int:
        number = claim.task.number
        if number in self._superseded:
            return -1
        report = Report(number, claim.attempt, step, value)
        if not self.reports.feed_pruner:
            return self.reports.add(report)
        step_s = time.monotonic() - self.last_report_at
        verdict = self.reports.add(report, step_s)
        self.last_report_at = time.monotonic()  # time spent waiting is not the next step's
        return verdict

    def mark_superseded(self, number: int) -> None:
        """The heartbeat learnt this trial is no longer ours: its next report aborts it."""
        self._superseded.add(number)

    def overran(self, grace_s: float) -> bool:
        """The current trial is past its timeout plus grace: the alarm did not stop it."""
        return (self.timeout_s is not None and self.current is not None
                and time.monotonic() - self.started > self.timeout_s + grace_s)
