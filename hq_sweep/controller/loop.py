"""The controller: the one process that keeps a sweep's workers fed, driving its strategy.

The strategy (Optuna's ask/tell by default) lives in memory, so samplers and pruners run at
in-memory speed; the durable truth is the trial records in Redis, and a restarted controller
rebuilds the strategy from them. One controller per sweep holds a Redis lock with a lease; a
second one waits. This module is the loop alone: the lock, housekeeping, reading news,
topping up the queue, publishing, finishing.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from hq_sweep.controller.rebuild import read_history
from hq_sweep.controller.strategy._base import Best, SamplesByRun, Strategy, Suggested
from hq_sweep.controller.strategy.choice import strategy_for
from hq_sweep.env import DEFAULT_PATIENCE_S
from hq_sweep.errors import HqSweepError, RedisUnavailable
from hq_sweep.messages import SuggestAnswer, SuggestRequest, TrialOutcome, TrialState
from hq_sweep.queue.admin import ping
from hq_sweep.queue.lifecycle import FINISHED_REASONS, user_stop
from hq_sweep.queue.lock_token import controller_token
from hq_sweep.queue.retry import patiently
from hq_sweep.queue.suggests import SuggestWrite
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.spec.param_tree import nest
from hq_sweep.spec.sweep import SweepSpec

log = logging.getLogger("hq_sweep.controller.loop")
_TIMED = frozenset({TrialState.COMPLETE, TrialState.PRUNED})  # durations that size batches


def trial_cap(spec: SweepSpec, grid_size: int | None) -> int | None:
    """How many trials the sweep runs: run_cap, the grid's size, or the smaller; None if
    neither bounds it (random and bayes sweeps without run_cap run until stopped). For
    progress bars: the loop counts run_cap itself, and a strategy's own end is its `stop`."""
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
    patience_s: float = DEFAULT_PATIENCE_S  # how long to wait for a server that went away


class Controller:
    def __init__(self, queue: SweepQueue, spec: SweepSpec, options: ControllerOptions,
                 strategy: Strategy | None = None) -> None:
        self.queue = queue
        self.spec = spec
        self.options = options
        if strategy is None:
            strategy = strategy_for(spec, queue.sweep_id, options.seed)
        self.strategy: Strategy = strategy
        self.next_number = 0  # trial numbers are the loop's: they name the records
        self.durations: deque[float] = deque(maxlen=200)
        self.token = controller_token(uuid.uuid4().hex)
        self._workers = (0.0, 1)  # (checked at, live workers)
        self._last_renew = self._last_reap = time.monotonic()
        self._published: Best | None = None
        self._paths = spec.parameter_paths()
        self._user_stop: str | None = None  # "stop"/"cancel" (asked by a user) or "deleted"
        self._define_by_run = spec.worker is not None  # a Python objective may suggest_*

    # ---- main loop ----------------------------------------------------------------------

    def run(self, on_tick: Callable[[], None] | None = None) -> str:
        """Drive the sweep to its end; returns why it ended."""
        patiently(self._acquire_lock, "controller lock", self.options.patience_s)
        try:
            patiently(self._start, "rebuild", self.options.patience_s)
            while True:
                try:
                    self.step()
                    self._housekeeping()
                    if self._done():
                        return patiently(self._finish, "finish", self.options.patience_s)
                except RedisUnavailable as exc:
                    self._recover(exc)
                if on_tick is not None:
                    on_tick()
        finally:
            with contextlib.suppress(RedisUnavailable):
                self.queue.lock.release(self.token)

    def _start(self) -> None:
        if user_stop(self.queue) is None:  # a stopping sweep stays so: this one winds it down
            self.queue.meta.set_running()
        history = read_history(self.queue, self.strategy.wants_reports)
        self.strategy.restore(history, self.keep_lock_fresh)
        self.next_number = len(history.records)
        self._after_tells()
        self._check_user_stop()

    def step(self) -> None:
        """One round: read results (and the reports that preceded them), tell, answer
        define-by-run suggests, top up. Suggests are answered after the tells, so a sampler
        knows every result a worker had recorded before it asked (as Optuna in one process)."""
        strategy = self.strategy
        news = self.queue.reports.pop_news(
            1000, self.options.wait_s if strategy.pending else 0,
            with_reports=strategy.wants_reports, with_suggests=self._define_by_run)
        if news.reports:
            decisions = strategy.decide(news.reports)
            if decisions.flags or decisions.answers:
                self.queue.reports.decide(decisions.flags, decisions.answers)
        if news.outcomes:
            self._tell(news.outcomes)
        if news.suggests:
            self._answer_suggests(news.suggests)
        self._top_up()

    def _answer_suggests(self, requests: Sequence[SuggestRequest]) -> None:
        """Sample what workers asked for, where the asking attempt still owns its trial
        (suggest.lua checks again as it records), and answer them in one call."""
        owners = self.queue.suggests.attempts(r.number for r in requests)
        writes = []
        for request in requests:
            if owners.get(request.number) != ("running", request.attempt):
                found = Suggested(SuggestAnswer(request.name, stale=True))
            elif isinstance(self.strategy, SamplesByRun):
                found = self.strategy.suggest(request)
            else:
                found = Suggested(SuggestAnswer(request.name, error=(
                    "this sweep's strategy does not sample define-by-run parameters: "
                    "declare them under parameters:")))
            writes.append(SuggestWrite(request, *found))
        self.queue.suggests.answer(writes)

    def _tell(self, outcomes: Iterable[TrialOutcome]) -> None:
        for outcome in outcomes:
            if self.strategy.tell(outcome) and outcome.state in _TIMED:
                self.durations.append(outcome.duration)
        self._after_tells()

    def _after_tells(self) -> None:
        stop = self.strategy.stop
        if stop is not None and stop.withdraw and self.strategy.pending:
            self.cancel_queued()
        self._publish_best()
        # study.trials would copy every trial: O(n) a step. The strategy counts instead.
        mean = sum(self.durations) / len(self.durations) if self.durations else None
        self.queue.meta.set_told(self.strategy.told, mean_trial_s=mean)

    def _done(self) -> bool:
        if self._user_stop == "deleted":
            return True
        if self.strategy.pending:
            return False
        stopped = self._user_stop is not None or self.strategy.stop is not None
        return stopped or self._remaining() == 0

    def _finish(self) -> str:
        if self._user_stop == "deleted":
            return "deleted"  # its keys are gone: write nothing back
        stop = self.strategy.stop
        reason = stop.reason if stop is not None else "run_cap"
        if self._user_stop is not None:
            reason = FINISHED_REASONS.get(self._user_stop, reason)
        self.queue.meta.set_told(self.strategy.told, self.strategy.held())
        self.queue.meta.set_finished(reason)
        self.queue.trials.drop_jobs()
        return reason

    # ---- lock and housekeeping ----------------------------------------------------------

    def _acquire_lock(self) -> None:
        announced = False
        while not self.queue.lock.acquire(self.token, self.options.lease_ms):
            if not announced:
                log.warning(
                    "sweep %s: another controller holds it; standing by", self.queue.sweep_id
                )
                announced = True
            time.sleep(min(1.0, self.options.lease_ms / 4000))

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

    def _housekeeping(self) -> None:
        """Every so often: keep the controller lock, requeue trials whose lease expired and
        tell those that used up their attempts (reap hands them back to us alone)."""
        now = time.monotonic()
        if now - self._last_reap > min(1.0, self.spec.lease / 4):
            self._last_reap = now
            self._check_user_stop()
            if self._user_stop == "deleted":
                return
            self.keep_lock_fresh()
            reaped = self.queue.trials.reap(self.spec.retries + 1)
            if reaped.requeued:
                log.info("requeued %d trial(s) whose lease expired", reaped.requeued)
            if reaped.failed:
                self._tell(o for r in reaped.failed if (o := r.outcome()) is not None)
            self._nudge()
        else:
            self.keep_lock_fresh()

    def _check_user_stop(self) -> None:
        """`hq-sweep stop`/`cancel` asked the sweep to end: ask no more, withdraw what is
        queued (trials requeued since, or enqueued before we saw the request); the sweep
        ends once nothing is pending. A deleted sweep ends at once."""
        mode = user_stop(self.queue)
        if mode is None:
            return
        if self._user_stop is None:
            log.info("sweep %s: %s", self.queue.sweep_id, "deleted" if mode == "deleted"
                     else f"`hq-sweep {mode}` asked it to end; winding down")
        self._user_stop = mode
        if mode != "deleted" and self.strategy.pending:
            self.cancel_queued()

    def _nudge(self) -> None:
        """Ready trials but no job to send a worker for them (its job died with a worker, or
        they were requeued): send wake-up jobs. Extra ones cost a worker one empty claim.
        Nothing queued or running, yet trials pending: a reply was lost on the way (a reap
        or cancel the client retried), so read their records."""
        counts = self.queue.meta.counts()
        queued = counts.get("queued", 0)
        if queued and not self.queue.trials.waiting_jobs():
            batch = self._batch_size()
            self.queue.trials.wake(min(self._live_workers(), -(-queued // batch)), batch)
        elif not queued and not counts.get("running", 0) and self.strategy.pending:
            self.reconcile()

    def _recover(self, exc: Exception) -> None:
        """Redis went away: wait for it, then re-read what may have been lost in flight."""
        log.warning("Redis unreachable (%s); waiting for it", exc)
        patience = self.options.patience_s
        patiently(lambda: ping(self.queue.connection), "controller", patience)
        patiently(self._keep_lock, "controller lock", patience)
        patiently(self.reconcile, "reconcile", patience)
        # Leases run on the server's clock, which went on while it was down: give the
        # workers' heartbeats one lease to renew before expired-looking trials are requeued.
        self._last_reap = time.monotonic() + self.spec.lease
        log.warning("Redis is back; sweep goes on")

    def reconcile(self) -> None:
        """Tell trials whose record says they ended but whose outcome never reached us."""
        records = self.queue.trials.records_for(sorted(self.strategy.pending))
        self._tell(o for r in records if (o := r.outcome()) is not None)

    def cancel_queued(self) -> None:
        """Withdraw the pending trials no worker has started (the strategy stopped)."""
        for number in self.queue.trials.cancel(sorted(self.strategy.pending)):
            self.strategy.tell(TrialOutcome(number, 0, TrialState.CANCELLED))

    # ---- asking -------------------------------------------------------------------------

    def _remaining(self) -> int | None:
        cap = self.spec.run_cap  # a strategy's own end (a grid's) shows in its `stop`
        return None if cap is None else max(0, cap - self.next_number)

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
        if self.strategy.stop is not None or self._user_stop is not None:
            return
        batch = self._batch_size()
        workers = self._live_workers()
        outstanding = len(self.strategy.pending)
        # Two jobs per worker waiting: nobody starves while the next job is asked for.
        want = workers * batch * 3 - outstanding
        if self.spec.parallelism:
            want = min(want, self.spec.parallelism + workers * batch - outstanding)
        if self.strategy.ask_ahead is not None:
            want = min(want, self.strategy.ask_ahead * workers - outstanding)
        remaining = self._remaining()
        if remaining is not None:
            want = min(want, remaining)
        if want <= 0 or (want < batch and outstanding >= workers * batch):
            return
        first = self.next_number
        tasks = self.strategy.ask(range(first, first + want))
        if tasks:
            self.next_number += len(tasks)
            batches = [tasks[i : i + batch] for i in range(0, len(tasks), batch)]
            # Asked trials exist only here until Redis holds them: a server that dies now
            # must not lose them (fenced by `next`: a retry after a lost reply is a no-op).
            patiently(lambda: self.queue.trials.enqueue(batches, first), "enqueue trials",
                      self.options.patience_s)

    # ---- publishing ---------------------------------------------------------------------

    def _publish_best(self) -> None:
        best = self.strategy.best
        if best is None or best == self._published:
            return
        params = self.queue.trials.params(best.number)
        if self._published is None or best.value != self._published.value:
            self.queue.meta.add_best_point(best.number, best.value)
        self.queue.meta.set_best({"number": best.number, "value": best.value,
                                  "params": nest(self._paths, params)})
        self._published = best
