"""The warm worker: load the user's code once, then run trial after trial without forking.

rq carries batches of trials (JSON only) to a `WarmWorker`, a SimpleWorker subclass, so
`setup()` state and CUDA contexts survive from one trial to the next. rq's job status is
transport; each trial's truth (state, attempt, lease, result) lives in hq-sweep's own keys.

Signals: a first SIGTERM finishes the current trial (within `term_grace_s`), gives back the
unstarted ones and exits DRAINED; a second SIGTERM gives back the current trial too and exits
REQUEUED at once; SIGUSR1 (Slurm's `--signal` warning) drains like the first SIGTERM and exits
WALLTIME. See exitcodes.py.
"""

from __future__ import annotations

import contextvars
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from types import FrameType
from typing import Any

from rq import Queue, SimpleWorker
from rq.exceptions import DequeueTimeout, StopRequested
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.worker import WorkerStatus

from hq_sweep import exitcodes
from hq_sweep.errors import RedisUnavailable
from hq_sweep.queue.client import UNREACHABLE_ERRORS, translate
from hq_sweep.queue.retry import patiently
from hq_sweep.queue.rq_jobs import scrub_list
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.queue.trials import Claim, Finish
from hq_sweep.worker.executor import TrialExecutor
from hq_sweep.worker.walltime import WalltimeGuard

log = logging.getLogger("hq_sweep.worker.warm_loop")

# rq resolves job functions by import path, so the warm worker publishes its runner here for
# the duration of each job (the same pattern rq uses for get_current_job()).
_current_runner: contextvars.ContextVar[TrialRunner] = contextvars.ContextVar("hq_sweep_runner")


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    lease_s: float = 20.0
    flush_interval_s: float = 0.05  # results wait at most this long to be batched
    poll_s: int = 1  # how often an idle worker checks whether the sweep has ended
    term_grace_s: float = 60.0  # after a first SIGTERM, how long the current trial may run
    timeout_grace_s: float = 5.0  # past trial_timeout: time to interrupt before replacing us
    max_trials: int | None = None  # recycle (a fresh worker takes over) after this many
    count: int | None = None  # leave for good after this many (`--count`, as wandb agent)
    max_rss_mb: float | None = None
    redis_patience_s: float = 300.0

    @property
    def heartbeat_s(self) -> float:
        return max(0.05, self.lease_s / 4)


def rss_mb() -> float:
    """This process's resident memory now (not its peak), in MB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class TrialRunner:
    """Runs claimed trials with the warm state and records how each attempt ended."""

    def __init__(self, queue: SweepQueue, name: str, executor: TrialExecutor,
                 options: WorkerOptions, walltime: WalltimeGuard | None = None) -> None:
        self.queue = queue
        self.name = name
        self.executor = executor
        self.options = options
        self.walltime = walltime or WalltimeGuard(job_id=None)  # None: not in a Slurm job
        self.trials_run = 0
        self.stop_code: int | None = None
        self.held: dict[int, Claim] = {}  # claimed, result not yet recorded
        self.pending: list[Finish] = []  # finished, not yet flushed to Redis
        self.lock = threading.RLock()

    def _redis(self, what: str, call: Any) -> Any:
        try:
            return patiently(call, what, self.options.redis_patience_s)
        except RedisUnavailable:
            self.lost_server()
            raise

    def lost_server(self) -> None:
        """The server stayed away for the whole patience: leave (the launcher does not
        restart us). Results not recorded yet go with us; their trials' leases run out and
        the controller runs them again once the server is back."""
        if self.stop_code != exitcodes.LOST_SERVER:
            log.error("%s: the server has been unreachable for %.0f s ($HQ_SWEEP_PATIENCE); "
                      "leaving", self.name, self.options.redis_patience_s)
        self.stop_code = exitcodes.LOST_SERVER

    def run_batch(self, batch: int) -> int:
        """Take up to `batch` ready trials at a time and run them, until none are ready."""
        total = 0
        try:
            while self.stop_code is None:
                if not self.walltime.allows(self.trials_run, batch):  # in a Slurm job only
                    self.stop(exitcodes.WALLTIME)
                    break
                claims: list[Claim] = self._redis("claim", lambda: self.queue.trials.claim(
                    self.name, batch, self.options.lease_s))
                if not claims:
                    break
                total += self._run_claims(claims)
            self.flush()
        except RedisUnavailable:
            if self.stop_code != exitcodes.LOST_SERVER:
                raise
        return total

    def _run_claims(self, claims: list[Claim]) -> int:
        with self.lock:
            self.held.update((c.task.number, c) for c in claims)
        last_flush = time.monotonic()
        for index, claim in enumerate(claims):
            if self.stop_code is not None:
                self.give_back(claims[index:])
                return index
            finish = self.executor.execute(claim)
            with self.lock:
                if finish is not None:
                    self.pending.append(finish)
                else:  # superseded: another attempt owns it
                    self.held.pop(claim.task.number, None)
            self.trials_run += 1
            self._check_recycling()
            if time.monotonic() - last_flush >= self.options.flush_interval_s:
                self.flush()
                last_flush = time.monotonic()
        return len(claims)

    def flush(self) -> None:
        if self.stop_code == exitcodes.LOST_SERVER:
            return  # nothing can be recorded; the trials come back through their leases
        # Reports first: the controller must see a trial's values before its result.
        self._redis("record reports", self.executor.reports.send)
        with self.lock:
            pending, self.pending = self.pending, []
        if pending:
            self._redis("record results", lambda: self.queue.trials.finish(pending))
            with self.lock:
                for item in pending:
                    self.held.pop(item.outcome.number, None)

    def give_back(self, claims: Sequence[Claim]) -> None:
        """Release claimed trials we will not finish and hand them to other workers."""
        held = [(c.task.number, c.attempt) for c in claims]
        released = self._redis("release", lambda: self.queue.trials.release(self.name, held))
        count = sum(released)
        self._redis("wake workers", lambda: self.queue.trials.wake(1 if count else 0, count))
        with self.lock:
            for number, _ in held:
                self.held.pop(number, None)
        if count:
            log.info("%s: gave back %d trial(s)", self.name, count)

    def abandon(self, code: int) -> None:
        """Record what is finished, give back everything else, and exit now."""
        self.flush()
        with self.lock:
            claims = list(self.held.values())
        self.give_back(claims)
        self.queue.workers.depart(self.name, {"done": self.trials_run},
                                  exitcodes.describe(code))
        os._exit(code)

    def stop(self, code: int) -> None:
        if self.stop_code is None:
            self.stop_code = code

    def _check_recycling(self) -> None:
        opts = self.options
        if opts.count is not None and self.trials_run >= opts.count:
            log.info("%s: %d trials run, as --count asked; leaving", self.name, self.trials_run)
            self.stop(exitcodes.COUNTED)
        elif opts.max_trials is not None and self.trials_run >= opts.max_trials:
            log.info("%s: %d trials run; recycling", self.name, self.trials_run)
            self.stop(exitcodes.RECYCLE)
        elif opts.max_rss_mb is not None and (used := rss_mb()) > opts.max_rss_mb:
            log.info("%s: %.0f MB resident > %.0f MB; recycling", self.name, used,
                     opts.max_rss_mb)
            self.stop(exitcodes.RECYCLE)

    def sweep_over(self) -> bool:
        return self.queue.meta.state() != "running"

    def exit_code(self) -> int:
        """Why the worker leaves. When rq's loop ended on a lost server (any of its calls may
        meet it first), the server gets the whole patience to come back before we say so."""
        if self.stop_code is not None:
            return self.stop_code
        try:
            over = patiently(self.sweep_over, "sweep state", self.options.redis_patience_s)
        except RedisUnavailable:
            self.lost_server()
            return exitcodes.LOST_SERVER
        except Exception:  # an unreadable state: the launcher starts us again
            return exitcodes.ERROR
        return exitcodes.OK if over else exitcodes.ERROR


def run_trial_batch(sweep_id: str, batch: int) -> int:
    """The rq job function: run ready trials, `batch` at a time, on the current warm worker."""
    runner = _current_runner.get(None)
    if runner is None:
        raise RuntimeError("run_trial_batch runs only inside hq-sweep's warm worker")
    if runner.queue.sweep_id != sweep_id:
        raise RuntimeError(f"job for sweep {sweep_id!r} reached a worker of "
                           f"{runner.queue.sweep_id!r}")
    return runner.run_batch(int(batch))


class WarmWorker(SimpleWorker):
    """rq's non-forking worker, with the warm runner in scope and hq-sweep's signals."""

    def __init__(self, queue: Queue, runner: TrialRunner, name: str) -> None:
        super().__init__([queue], name=name, connection=queue.connection,
                         serializer=JSONSerializer, job_class=queue.job_class,  # screened
                         log_job_description=False)
        self.runner = runner
        self._first_term = -10.0

    def execute_job(self, job: Job, queue: Queue) -> None:
        token = _current_runner.set(self.runner)
        try:
            super().execute_job(job, queue)
        except UNREACHABLE_ERRORS:
            if not self._lost_server():
                raise  # rq's bookkeeping in a short outage: rq's loop deals with it
        finally:
            _current_runner.reset(token)
        if self._lost_server():
            raise StopRequested  # rq's loop leaves quietly on this (not its catch-all)

    def _lost_server(self) -> bool:
        return self.runner.stop_code == exitcodes.LOST_SERVER

    def dequeue_job_and_maintain_ttl(
        self, timeout: int | None, max_idle_time: int | None = None
    ) -> tuple[Job, Queue] | None:
        # Block briefly and look at the sweep's state between tries, so workers leave
        # within a second of the sweep ending instead of waiting on an empty queue. A server
        # gone for longer than the patience ends the worker (rq's own loop would retry forever).
        poll = self.runner.options.poll_s
        patience = self.runner.options.redis_patience_s
        try:
            while True:
                if self._stop_requested or self.runner.stop_code is not None:
                    return None
                result = patiently(partial(self._dequeue_screened, poll), "take a job", patience)
                if (result is not None or self._stop_requested
                        or self.runner.stop_code is not None):
                    return result
                if patiently(self.runner.sweep_over, "sweep state", patience):
                    return None
        except RedisUnavailable:
            self.runner.lost_server()
            return None

    def _dequeue_once(self, poll: int) -> tuple[Job, Queue] | None:
        """One pass of rq's dequeue loop (heartbeat, maintenance, a blocking pop of `poll`
        seconds), raising RedisUnavailable where rq's loop would retry without end."""
        try:
            self.set_state(WorkerStatus.IDLE)
            self.heartbeat()
            if self.should_run_maintenance_tasks:
                self.run_maintenance_tasks()
            result = self.queue_class.dequeue_any(
                self._ordered_queues, poll, connection=self.connection,
                job_class=self.job_class, serializer=self.serializer,
                death_penalty_class=self.death_penalty_class)
            if result is not None:
                self.reorder_queues(reference_queue=result[1])
                result[0].redis_server_version = self.get_redis_server_version()
            self.heartbeat()
        except DequeueTimeout:
            return None
        except UNREACHABLE_ERRORS as exc:
            raise translate(exc) from exc
        return result

    def teardown(self) -> None:
        # rq unregisters the worker: with the server gone that fails, and must not mask why
        # the worker is leaving.
        try:
            super().teardown()
        except UNREACHABLE_ERRORS as exc:
            log.debug("%s: could not unregister from rq: %s", self.name, exc)

    def _dequeue_screened(self, poll: int) -> tuple[Job, Queue] | None:
        """rq's dequeue; where something in rq's keys breaks it (garbage that is no job id
        in its lists, an unreadable registry), the garbage is set aside and the worker
        carries on (rq would leave its loop: the worker would quit). Jobs themselves are
        screened as rq loads them (`queue.rq_jobs`)."""
        try:
            return self._dequeue_once(poll)
        except RedisUnavailable:
            raise
        except Exception as exc:  # rq's own parsing: anything, on someone else's data
            queue, quarantine = self.runner.queue, self.runner.queue.quarantine
            rq_lists = (queue.rq_queue.key, queue.rq_queue.intermediate_queue_key)
            scrubbed = 0
            for key in rq_lists:
                scrubbed += patiently(partial(scrub_list, queue.connection, key, quarantine),
                                      "scrub rq lists", self.runner.options.redis_patience_s)
            if not scrubbed:  # nothing to remove: do not spin on what keeps failing
                quarantine.put("rq", repr(exc), f"rq could not dequeue: {str(exc)[:300]}")
                time.sleep(poll)
            return None

    def _install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_term)
        signal.signal(signal.SIGUSR1, self._on_usr1)

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        if now - self._first_term < 1.0:
            return  # the same request delivered twice (terminal or Slurm, plus the launcher)
        if self.runner.stop_code is None:
            self._first_term = now
            log.warning("%s: %s: finishing the current trial, then leaving (again: leave now)",
                        self.name, signal.Signals(signum).name)
            self.runner.stop(exitcodes.DRAINED)
            self._stop_requested = True
            timer = threading.Timer(self.runner.options.term_grace_s, os.kill,
                                    (os.getpid(), signal.SIGTERM))
            timer.daemon = True
            timer.start()
            return
        log.warning("%s: second %s: giving the current trial back", self.name,
                    signal.Signals(signum).name)
        self.runner.abandon(exitcodes.REQUEUED)

    def _on_usr1(self, signum: int, frame: FrameType | None) -> None:
        if not self._stop_requested:  # srun and the batch script may both forward it
            log.warning("%s: SIGUSR1 (walltime near): no new trials; finishing the current one",
                        self.name)
        self.runner.stop(exitcodes.WALLTIME)
        self._stop_requested = True
