"""The heartbeat: a thread that keeps a worker's leases alive and replaces a hung worker."""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from hq_sweep import exitcodes
from hq_sweep.messages import TrialOutcome, TrialState
from hq_sweep.queue.trials import RENEWED_CANCELLED, Finish
from hq_sweep.worker.warm_loop import TrialRunner

log = logging.getLogger("hq_sweep.worker")


class Heartbeat(threading.Thread):
    """Keeps this worker's leases alive from a thread the objective cannot block, and
    replaces the process when a trial overran its timeout and could not be interrupted."""

    def __init__(self, runner: TrialRunner, info: dict[str, Any]) -> None:
        super().__init__(name="hq-sweep-heartbeat", daemon=True)
        self.runner, self.info = runner, info
        self.stopped = threading.Event()

    def run(self) -> None:
        runner = self.runner
        while True:
            try:
                self.beat()
            except Exception as exc:  # a Redis hiccup must not kill the heartbeat
                log.warning("%s: heartbeat failed: %s", runner.name, exc)
            if runner.executor.overran(runner.options.timeout_grace_s):
                self._replace_hung_worker()
            if self.stopped.wait(runner.options.heartbeat_s):
                return

    def beat(self) -> None:
        runner = self.runner
        runner.queue.workers.heartbeat(runner.name, {**self.info, **self._doing()})
        with runner.lock:
            held = [(c.task.number, c.attempt) for c in runner.held.values()]
        kept = runner.queue.trials.renew(runner.name, held, runner.options.lease_s)
        for (number, _), ok in zip(held, kept, strict=True):
            if not ok:
                runner.executor.mark_superseded(number)
            elif ok == RENEWED_CANCELLED:  # `hq-sweep cancel`: abandon it
                runner.executor.mark_cancelled(number)

    def _doing(self) -> dict[str, Any]:
        """What the monitor shows of this worker: the trial it runs now (not those claimed
        ahead), since when (wall clock), and how many it has run."""
        executor = self.runner.executor
        current = executor.current
        since = time.time() - (time.monotonic() - executor.started)
        trial = None if current is None else {"number": current.task.number,
                                              "since": round(since, 3)}
        doing: dict[str, Any] = {"trial": trial, "done": self.runner.trials_run}
        end = self.runner.walltime.end()  # a Slurm job's end (cached; None outside one)
        if end is not None:
            doing["ends"] = round(end, 1)
        return doing

    def _replace_hung_worker(self) -> None:
        runner = self.runner
        current = runner.executor.current
        if current is None:
            return
        log.error("%s: trial %d overran its timeout and cannot be interrupted; replacing "
                  "this worker", runner.name, current.task.number)
        outcome = TrialOutcome(current.task.number, current.attempt, TrialState.FAILED,
                               reason="timeout (uninterruptible; worker replaced)",
                               worker=runner.name)
        with runner.lock:
            runner.pending.append(Finish(outcome, time.time(), failure_kind="timeout"))
        runner.executor.current = None
        runner.abandon(exitcodes.HUNG)

    def stop(self) -> None:
        self.stopped.set()
        self.join(timeout=self.runner.options.heartbeat_s + 1)
