"""Intermediate values on their way from a running trial to Redis, and prune decisions back."""

from __future__ import annotations

import logging
import threading
import time

from hq_sweep.errors import RedisUnavailable
from hq_sweep.messages import Decision, Report
from hq_sweep.queue.reports import ReportChannel
from hq_sweep.worker.decision_wait import DecisionWaits

log = logging.getLogger("hq_sweep")


class ReportBuffer:
    """Intermediate values on their way to Redis, batched so reporting never stalls a trial.

    A report is sent at once when the last send is `interval_s` old (an epoch-long trial
    reports immediately); a burst of quick reports travels in one round trip. The prune
    decision comes back with the send, so a trial learns it by its next report at the latest.
    Where waiting pays off (see decision_wait), a report goes out at once and waits briefly
    for the controller's decision on this very step, so a trial pruned at a rung stops there
    instead of training one more step.
    """

    def __init__(self, channel: ReportChannel, feed_pruner: bool) -> None:
        self.channel, self.feed_pruner = channel, feed_pruner
        # With a pruner, decisions must come back within an epoch: send whenever 5 ms have
        # passed (at most one round trip per 5 ms of training, ~3%); without one, batch more.
        self.interval_s = 0.005 if feed_pruner else 0.05
        self.items: list[Report] = []
        self.decisions: dict[int, Decision] = {}  # trial number -> latest decision known
        self.superseded: set[int] = set()  # trials this worker's attempt no longer owns
        self.last_send = 0.0
        self.lock = threading.Lock()
        self.waits = DecisionWaits()
        self.last_steps: dict[int, int] = {}  # trial number -> step of its previous report
        self.unreachable = False  # the last send failed: Redis is away

    def add(self, report: Report, step_s: float = 0.0) -> Decision | None:
        """Queue `report` (which ended a step of `step_s` seconds); the decision known now.
        Whether the attempt was superseded shows in `superseded` after the call."""
        if not self.feed_pruner:  # the common, hot path: append, send now and then
            self._queue_up(report, at_once=False)
            return self.decisions.get(report.number)
        wait_s = self.waits.budget(report.step, step_s)
        if wait_s:
            report = report._replace(awaits=True)
        self._queue_up(report, at_once=bool(wait_s))
        decision = self.decisions.get(report.number)
        decided_step = self.last_steps.get(report.number, report.step)  # a late decision's
        waiting = decision is None or not (decision.prunes or decision.cancels)
        if wait_s and waiting and not self.unreachable and report.number not in self.superseded:
            decision, decided_step = self._await(report, wait_s) or decision, report.step
        self.last_steps[report.number] = report.step
        if report.number not in self.superseded:
            self.waits.observe(report.step, pruned=False)
            if decision is not None and decision.prunes:
                self.waits.observe(decided_step, pruned=True)
        return decision

    def _queue_up(self, report: Report, at_once: bool) -> None:
        with self.lock:
            self.items.append(report)
        if at_once or time.monotonic() - self.last_send >= self.interval_s:
            try:
                self.send()
                self.unreachable = False
            except RedisUnavailable as exc:  # a Redis blip must not cost the trial: the next send
                if not self.unreachable:  # or the flush delivers them; say so once
                    log.warning("reports wait for Redis (%s); training goes on", exc)
                    self.unreachable = True

    def _await(self, report: Report, wait_s: float) -> Decision | None:
        began = time.monotonic()
        try:
            decision = self.channel.await_decision(report.number, report.step, wait_s)
        except RedisUnavailable:
            decision = None  # no decision now; it comes with a later report
        self.waits.waited(time.monotonic() - began, decision is not None)
        if decision is not None:
            self.decisions[report.number] = decision
        return decision

    def send(self) -> None:
        """Send what is buffered; on a Redis error the reports stay buffered (resending is
        harmless: values are keyed by step, and the controller skips steps it has seen)."""
        with self.lock:
            items, self.items = self.items, []
        self.last_send = time.monotonic()
        if not items:
            return
        try:
            verdicts = self.channel.report_many(items, self.feed_pruner)
        except RedisUnavailable:
            with self.lock:
                self.items[:0] = items
            raise
        self.decisions.update(verdicts.decisions)
        self.superseded |= verdicts.superseded

    def forget(self, number: int) -> None:
        self.decisions.pop(number, None)
        self.superseded.discard(number)
        self.last_steps.pop(number, None)
