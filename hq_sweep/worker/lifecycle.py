"""`hq-sweep worker`: one warm worker process, from connecting to Redis to leaving cleanly."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import signal
import time
from pathlib import Path
from typing import Any

from hq_sweep import exitcodes
from hq_sweep.env import JobEnvironment
from hq_sweep.errors import HqSweepError, TransportError
from hq_sweep.queue.client import Client
from hq_sweep.queue.registry import SweepRegistry
from hq_sweep.queue.retry import patiently
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.spec.param_tree import nest
from hq_sweep.spec.sweep import StoredSpecError, SweepSpec, parse_stored_spec
from hq_sweep.worker.command_mode import CommandObjective
from hq_sweep.worker.cost import CostMeter
from hq_sweep.worker.executor import TrialExecutor
from hq_sweep.worker.heartbeat import Heartbeat
from hq_sweep.worker.trial import WorkerContext
from hq_sweep.worker.usercode import (
    Objective,
    UserCode,
    UserCodeError,
    describe_exception,
    load_user_code,
)
from hq_sweep.worker.walltime import guard_for
from hq_sweep.worker.wandb_contract import WandbContract
from hq_sweep.worker.warm_loop import TrialRunner, WarmWorker, WorkerOptions, rss_mb

log = logging.getLogger("hq_sweep.worker.warm_loop")


class WorkerStartError(HqSweepError):
    """The worker cannot start: no sweep, or the user's code does not load."""


def wait_for_sweep(connection: Client, sweep_id: str | None, timeout_s: float) -> str:
    """The sweep to serve: the one named, else the newest running one (waiting for it)."""
    registry = SweepRegistry(connection)
    deadline = time.monotonic() + timeout_s
    while True:
        if sweep_id is not None and registry.exists(sweep_id):
            return sweep_id
        if sweep_id is None:
            running = [
                s
                for s in reversed(registry.list())
                if SweepQueue(connection, s).meta.state() == "running"
            ]
            if running:
                return running[0]
        if time.monotonic() >= deadline:
            what = f"no sweep {sweep_id!r}" if sweep_id else "no running sweep"
            raise WorkerStartError(f"{what} on the server after {timeout_s:.0f} s")
        time.sleep(0.5)


def load_objective(spec: SweepSpec, meta: dict[str, str], sweep_id: str) -> UserCode:
    """The user's setup/objective, or a command-mode objective for `program:` sweeps."""
    base_dirs = [Path(meta.get("base_dir") or "."), Path.cwd()]
    if spec.worker is not None:
        entry = spec.worker
        return load_user_code(entry.module, entry.setup, entry.objective, base_dirs)
    if spec.program is None:
        raise WorkerStartError("the sweep names neither `worker:` nor `program:`")
    from hq_sweep.worker.command_mode import kill_delay

    command_objective: Objective = CommandObjective(
        program=spec.program,
        command=spec.command,
        metric=[m.name for m in spec.objectives()],
        cwd=base_dirs[0],
        timeout=spec.trial_timeout,
        kill_grace=kill_delay(os.environ),
        wandb=WandbContract.for_sweep(sweep_id, base_dirs[0], spec.project, spec.entity),
    )
    return UserCode(setup=None, objective=command_objective)


class SweepEnded(HqSweepError):
    """The sweep had already finished when the worker came: nothing to do."""

    exit_code = exitcodes.ENDED


def sweep_over(sweep_id: str, meta: dict[str, str]) -> str | None:
    """Why a worker would find nothing to do on this sweep (it finished, or a user stopped
    it), or None while it runs."""
    state = meta.get("state")
    if state == "finished":
        return (f"sweep {sweep_id} has already finished "
                f"({meta.get('finished_reason') or 'done'})")
    if state == "stopping":
        return f"sweep {sweep_id} has already been stopped"
    return None


class EarlySignals:
    """SIGTERM/SIGINT/SIGUSR1 before the worker loop runs: remember them, stop after setup."""

    def __init__(self) -> None:
        self.code: int | None = None
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
            signal.signal(sig, self._note)

    def _note(self, signum: int, frame: object) -> None:
        if self.code is None:
            self.code = exitcodes.WALLTIME if signum == signal.SIGUSR1 else exitcodes.DRAINED


def _options_for(spec: SweepSpec, options: WorkerOptions) -> WorkerOptions:
    return dataclasses.replace(options, lease_s=spec.lease,
                               max_trials=spec.max_trials_per_worker,
                               max_rss_mb=spec.max_worker_memory_mb)


def memory_limit_after_setup(options: WorkerOptions, name: str) -> WorkerOptions:
    """Turn memory recycling off when setup() alone passes the limit: recycling would then
    restart the worker (and pay setup again) after every single trial."""
    limit = options.max_rss_mb
    if limit is None or (used := rss_mb()) <= limit:
        return options
    log.warning("%s: %.0f MB resident after setup(), over max_worker_memory_mb %.0f: memory "
                "recycling is off for this worker (it would restart after every trial); raise "
                "max_worker_memory_mb above what setup() needs", name, used, limit)
    return dataclasses.replace(options, max_rss_mb=None)


def _run_setup(code: UserCode, ctx: WorkerContext) -> Any:
    if code.setup is None:
        return None
    started = time.perf_counter()
    try:
        state = code.setup(ctx)
    except Exception as exc:  # the user's setup may raise anything: report it, exit non-zero
        log.exception("%s: setup() failed", ctx.worker_name)
        raise UserCodeError(f"setup() failed: {describe_exception(exc)}") from exc
    log.info("%s: setup() took %.2f s", ctx.worker_name, time.perf_counter() - started)
    return state


def _load_logged(spec: SweepSpec, meta: dict[str, str], sweep_id: str, name: str) -> UserCode:
    """`load_objective`, with the user's traceback in the log when their module raised on
    import (the error itself is one line: where a syntax error or a missing package is)."""
    try:
        return load_objective(spec, meta, sweep_id)
    except UserCodeError as exc:
        if exc.__cause__ is not None:
            log.error("%s: %s", name, exc, exc_info=exc.__cause__)
        raise


def _stored_spec(queue: SweepQueue, meta: dict[str, str], sweep_id: str) -> SweepSpec:
    """The sweep's spec; one that does not parse stalls the sweep (every worker would fail
    alike) and ends this worker as unable to start."""
    try:
        return parse_stored_spec(meta.get("spec"), sweep_id)
    except StoredSpecError as exc:
        with contextlib.suppress(TransportError):
            queue.meta.set_stalled(str(exc))
        raise


def run_worker(
    connection: Client, sweep_id: str | None, options: WorkerOptions, wait_s: float = 60.0
) -> int:
    """Serve one sweep until it ends or we are told to stop; returns the exit code."""
    early = EarlySignals()  # imports and setup() take a while: a signal then must not kill us
    patience = options.redis_patience_s  # a server restarting as we start: wait for it
    sweep_id = patiently(lambda: wait_for_sweep(connection, sweep_id, wait_s), "find the sweep",
                         patience)
    queue = SweepQueue(connection, sweep_id)
    meta = patiently(queue.meta.read, "read the sweep", patience)
    spec = _stored_spec(queue, meta, sweep_id)
    if (over := sweep_over(sweep_id, meta)) is not None:
        raise SweepEnded(f"{over}: no trials to run")
    options = _options_for(spec, options)
    job = JobEnvironment.from_env()
    name = job.worker_name()
    try:
        code = _load_logged(spec, meta, sweep_id, name)
        state = _run_setup(code, WorkerContext(worker_name=name, sweep=sweep_id, spec=spec,
                                               job=job))
    except UserCodeError as exc:  # every worker would fail alike: the sweep is stalled
        with contextlib.suppress(TransportError):
            queue.meta.set_stalled(f"{name}: {exc}")
        raise
    queue.meta.clear_stalled()
    options = memory_limit_after_setup(options, name)
    # Command mode bounds its subprocess itself; Python objectives get the worker's alarm.
    timeout = None if spec.worker is None else spec.trial_timeout
    prunes = spec.early_terminate is not None or (
        spec.pruner is not None and spec.pruner.name != "nop")
    nest_params = functools.partial(nest, spec.parameter_paths())
    executor = TrialExecutor(queue, name, code.objective, state, nest_params,
                             [m.name for m in spec.objectives()], timeout, feed_pruner=prunes,
                             flat_params=code.optuna_style, meter=CostMeter.for_job(job))
    if isinstance(code.objective, CommandObjective):  # its child's peak is the trial's
        code.objective.meter = executor.meter
    runner = TrialRunner(queue, name, executor, options, guard_for(job))
    executor.suggester.before = runner.flush  # the study knows every result before it samples
    executor.suggester.patience_s = options.redis_patience_s
    if early.code is not None:
        log.warning("%s: stopped before taking a trial (%s)", name, exitcodes.describe(early.code))
        return early.code
    info = {"node": job.node, "gpu": job.gpu, "rank": job.rank, "pid": os.getpid()}
    heartbeat = Heartbeat(runner, info)
    heartbeat.start()
    code_out = exitcodes.ERROR  # unless the loop returns
    try:
        WarmWorker(queue.rq_queue, runner, name).work(logging_level="WARNING")
        code_out = runner.exit_code()
    finally:
        heartbeat.stop()
        runner.flush()
        with contextlib.suppress(TransportError):  # the monitor shows it left, and why
            queue.workers.depart(name, {**info, "done": runner.trials_run},
                                 exitcodes.describe(code_out))
    log.info("%s: %d trials run; leaving: %s", name, runner.trials_run,
             exitcodes.describe(code_out))
    waits = executor.reports.waits
    if waits.waits:  # how often reports waited for a prune decision (see decision_wait)
        log.info("%s: %d reports waited for their prune decision, %d answered in time",
                 name, waits.waits, waits.answered)
    return code_out
