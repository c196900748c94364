"""Running one claimed trial: call the objective, bound its time, and say how it ended."""

from __future__ import annotations

import contextlib
import logging
import math
import signal
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from optuna import TrialPruned

from hq_sweep.limits import REASON_CHARS, RECORD_BYTES, mib
from hq_sweep.messages import Decision, Report, TrialOutcome, TrialState, dumps
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.queue.trials import Claim, Finish
from hq_sweep.worker.cost import CostMeter
from hq_sweep.worker.reports import ReportBuffer
from hq_sweep.worker.suggest import Suggester, decode_distributions, encode_distributions
from hq_sweep.worker.trial import AttemptSuperseded, TooLarge, Trial, TrialCancelled
from hq_sweep.worker.usercode import (
    InvalidResult,
    Objective,
    describe_exception,
    normalize_result,
)

log = logging.getLogger("hq_sweep")


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
    line: str = ""  # the failure in one line (`Type: message (file.py:N)`), shown beside it


def _asked_params(trial: Trial) -> dict[str, str]:
    """The record's params and distributions as the objective asked them: names sampled
    ahead that it never asked are left out (as the controller leaves them out of its study)."""
    return {"params": dumps(trial.flat_params),
            "distributions": dumps(encode_distributions(trial.distributions))}


def _storable(extra: dict[str, Any]) -> dict[str, Any]:
    """Metrics and user attributes as the record can hold them (JSON): NaN and inf become
    null and anything else JSON cannot say becomes its text, so a stray value in what a
    trial returns costs nothing, not the worker."""
    out: dict[str, Any] = {}
    for key, value in extra.items():
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        elif not isinstance(value, str | int | float | None):  # the common scalars pass as they are
            try:
                dumps(value)
            except (TypeError, ValueError):
                value = str(value)
        out[str(key)] = value
    return out


def _bounded(ending: Ending, extra: dict[str, Any]) -> tuple[Ending, dict[str, Any]]:
    """The ending and the metrics/user_attrs to record, within `limits.RECORD_BYTES`: a
    result over it fails the trial, saying so, and none of it is stored."""
    if not extra:
        return ending, extra
    size = len(dumps(extra))
    if size <= RECORD_BYTES:
        return ending, extra
    biggest = max(extra, key=lambda key: len(dumps(extra[key])))
    reason = (f"too large: the result's metrics and user_attrs take {mib(size)} as JSON "
              f"({biggest!r} the most); the limit is {mib(RECORD_BYTES)} a trial "
              "(hq_sweep.limits.RECORD_BYTES)")
    return Ending(TrialState.FAILED, reason=reason, kind="too large"), {}


def _failure_kind(exc: BaseException) -> str:
    name = type(exc).__name__
    return "timeout" if "Timeout" in name else name


class TrialExecutor:
    """Calls `objective(trial, state)` for one claim at a time (in the main thread)."""

    def __init__(self, queue: SweepQueue, worker: str, objective: Objective, state: Any,
                 nest: Callable[[dict[str, Any]], dict[str, Any]],
                 metric_names: Sequence[str], timeout_s: float | None,
                 feed_pruner: bool = False, flat_params: bool = False,
                 meter: CostMeter | None = None) -> None:
        self.queue, self.worker, self.objective, self.state = queue, worker, objective, state
        self.nest = nest
        self.metric_names = list(metric_names)
        self.timeout_s = timeout_s
        self.current: Claim | None = None
        self.started = 0.0
        self.last_report_at = 0.0
        self.reports = ReportBuffer(queue.reports, feed_pruner)
        self.cancelled: set[int] = set()  # `hq-sweep cancel` flags, learnt by the heartbeat
        # Define-by-run suggests; the runner sets `suggester.before` to record buffered results.
        self.suggester = Suggester(queue.suggests, self.reports.superseded)
        self.flat_params = flat_params  # an Optuna-style objective sees `trial.params` flat
        self.meter = meter  # what each trial cost (None: not measured)

    def execute(self, claim: Claim) -> Finish | None:
        """Run one trial; None when another attempt took it over meanwhile."""
        task = claim.task
        by_run = decode_distributions(task.distributions)
        declared = {k: v for k, v in task.params.items() if k not in by_run}
        trial = Trial(task.number, claim.attempt, declared,
                      declared if self.flat_params else self.nest(declared),
                      lambda step, value: self._report(claim, step, value),
                      cancelled=lambda: task.number in self.cancelled,
                      sampler=lambda name, distribution: self.suggester.sample(
                          task.number, claim.attempt, name, distribution),
                      ahead={k: (task.params[k], d) for k, d in by_run.items()
                             if k in task.params})
        self.current, self.started = claim, time.monotonic()
        self.last_report_at = self.started
        if self.meter is not None:
            self.meter.begin()
        try:
            ending = self._call(trial)
        except AttemptSuperseded:
            return None
        finally:
            self.current = None
            self.reports.forget(task.number)
            self.cancelled.discard(task.number)
        duration = time.monotonic() - self.started
        extra = _storable({**(ending.metrics or {}), **trial.user_attrs})
        ending, extra = _bounded(ending, extra)
        outcome = TrialOutcome(
            number=task.number, attempt=claim.attempt, state=ending.state, values=ending.values,
            reason=ending.reason, duration=duration, worker=self.worker, unused=trial.unasked,
        )
        return Finish(outcome, ended_at=time.time(), metrics=extra or None,
                      failure_kind=ending.kind, failure_line=ending.line,
                      rewrite=_asked_params(trial) if outcome.unused else None,
                      cost=self.meter.end(duration) if self.meter is not None else None)

    def _call(self, trial: Trial) -> Ending:
        try:
            trial.check_cancelled()  # flagged before it started: do not start it
            with self._alarm():
                result = self.objective(trial, self.state)
            values, metrics = normalize_result(result, self.metric_names)
            return Ending(TrialState.COMPLETE, values, metrics)
        except TrialPruned:
            # The last finite value: a diverged step (NaN) must not make the record unwritable.
            last = [trial.last_finite] if trial.last_finite is not None else None
            return Ending(TrialState.PRUNED, last, reason=f"pruned at step {trial.last_step}")
        except AttemptSuperseded:
            raise
        except TrialCancelled:
            at = "" if trial.last_step is None else f" at step {trial.last_step}"
            return Ending(TrialState.CANCELLED, reason=f"cancelled by `hq-sweep cancel`{at}")
        except TrialTimeout:
            return Ending(TrialState.FAILED, reason=f"timeout: exceeded trial_timeout of "
                          f"{self.timeout_s:g} s", kind="timeout")
        except InvalidResult as exc:
            return Ending(TrialState.FAILED, reason=str(exc)[:REASON_CHARS], kind="invalid result")
        except TooLarge as exc:
            return Ending(TrialState.FAILED, reason=str(exc), kind="too large")
        except Exception as exc:  # the user's objective may raise anything: it costs this trial
            return Ending(TrialState.FAILED, reason=traceback.format_exc()[-REASON_CHARS:],
                          kind=_failure_kind(exc), line=describe_exception(exc))

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

    def _report(self, claim: Claim, step: int, value: float) -> Decision | None:
        number = claim.task.number
        superseded = self.reports.superseded
        if number in superseded:
            raise AttemptSuperseded(f"trial {number} attempt {claim.attempt} superseded")
        report = Report(number, claim.attempt, step, value)
        if not self.reports.feed_pruner:
            decision = self.reports.add(report)
        else:
            step_s = time.monotonic() - self.last_report_at
            decision = self.reports.add(report, step_s)
            self.last_report_at = time.monotonic()  # time spent waiting is not the next step's
        if number in superseded:  # the send just learnt it
            raise AttemptSuperseded(f"trial {number} attempt {claim.attempt} superseded")
        return decision

    def mark_cancelled(self, number: int) -> None:
        """The heartbeat learnt `hq-sweep cancel` flagged this trial: its next report (or,
        in command mode, the next tick) abandons it. (A set: as `mark_superseded`.)"""
        self.cancelled.add(number)

    def mark_superseded(self, number: int) -> None:
        """The heartbeat learnt this trial is no longer ours: its next report aborts it.
        (Written by the heartbeat thread, read on every report: a set's add and `in` are
        atomic, so no lock on this hot path.)"""
        self.reports.superseded.add(number)

    def overran(self, grace_s: float) -> bool:
        """The current trial is past its timeout plus grace: the alarm did not stop it."""
        return (self.timeout_s is not None and self.current is not None
                and time.monotonic() - self.started > self.timeout_s + grace_s)
