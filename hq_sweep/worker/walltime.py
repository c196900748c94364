"""Walltime awareness: a worker inside a Slurm job does not start a trial that cannot finish.

Slurm 22.05 exports no SLURM_JOB_END_TIME, so the end is asked of Slurm (`hq_sweep.env.
job_end_time`) and cached: re-read every `refresh_s` because an admin may extend the job, but
rarely, since every worker asks and slurmctld serves the whole cluster. The estimate of a
trial's length is this worker's own observed mean (claim to claim, so it includes recording
results); before the first trial there is nothing to judge by and only the margin applies.
A trial that still overruns is not lost: its lease expires and the controller requeues it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from hq_sweep.env import JobEnvironment, job_end_time

MARGIN_VAR = "HQ_SWEEP_WALLTIME_MARGIN_S"
DEFAULT_MARGIN_S = 30.0  # results flushed and the worker gone before Slurm's SIGTERM
REFRESH_S = 300.0

log = logging.getLogger("hq_sweep.worker.walltime")


def _slurm_end(job_id: str) -> float | None:
    end = job_end_time(job_id)
    return None if end is None else end.timestamp()


@dataclass
class WalltimeGuard:
    """Says whether the next claim of `batch` trials is likely to finish before the end."""

    job_id: str | None
    margin_s: float = DEFAULT_MARGIN_S
    refresh_s: float = REFRESH_S
    read_end: Callable[[str], float | None] = _slurm_end  # epoch seconds, None: unknown
    clock: Callable[[], float] = time.time
    _end: float | None = field(default=None, init=False)
    _read_at: float | None = field(default=None, init=False)
    _mark: tuple[float, int] | None = field(default=None, init=False)  # (time, trials run)
    _busy_s: float = field(default=0.0, init=False)
    _counted: int = field(default=0, init=False)

    def end(self) -> float | None:
        """The job's end (epoch seconds), re-read at most every `refresh_s`."""
        if self.job_id is None:
            return None
        now = self.clock()
        if self._read_at is None or now - self._read_at >= self.refresh_s:
            self._read_at = now
            fresh = self.read_end(self.job_id)
            self._end = fresh if fresh is not None else self._end  # keep the last good one
        return self._end

    def mean_trial_s(self) -> float | None:
        return self._busy_s / self._counted if self._counted else None

    def observe(self, trials_run: int) -> None:
        """Account the time since the last call to the trials run since then.

        An interval in which no trial ran (an empty claim, an idle wait for work) is dropped,
        so waiting does not inflate the estimate.
        """
        now = self.clock()
        if self._mark is not None and trials_run > self._mark[1]:
            self._busy_s += now - self._mark[0]
            self._counted += trials_run - self._mark[1]
        self._mark = (now, trials_run)

    def allows(self, trials_run: int, batch: int = 1) -> bool:
        """Record progress, then: may this worker claim up to `batch` more trials?"""
        self.observe(trials_run)
        end = self.end()
        if end is None:
            return True
        expected = (self.mean_trial_s() or 0.0) * max(1, batch)
        left = end - self.margin_s - self.clock()
        if expected <= left:
            return True
        log.warning("walltime: %.0f s left before the margin, next trials need ~%.0f s; "
                    "taking no more trials", left, expected)
        return False


def guard_for(job: JobEnvironment) -> WalltimeGuard:
    """The guard of a worker running in `job` (off outside Slurm); one per worker process."""
    margin = float(os.environ.get(MARGIN_VAR) or DEFAULT_MARGIN_S)
    return WalltimeGuard(job.job_id if job.under_slurm else None, margin_s=margin)
