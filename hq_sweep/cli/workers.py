"""`hq-sweep worker` and `start-workers`: warm workers, one in this process or many through a
launcher (local processes, Slurm steps, HyperQueue tasks), and their exit codes."""

from __future__ import annotations

import os
import signal
import time
from typing import Annotated

import typer

from hq_sweep import exitcodes
from hq_sweep.cli.common import (
    CountOption,
    RedisOption,
    SweepOption,
    console,
    fail,
    friendly_errors,
    setup_logging,
)
from hq_sweep.env import PATIENCE, REDIS_URL, patience_s
from hq_sweep.errors import HqSweepError, RedisUnavailable
from hq_sweep.launchers.registry import Launcher, LauncherName, make_launcher
from hq_sweep.queue.admin import ping
from hq_sweep.queue.client import connect
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.results.monitor import stall_fix
from hq_sweep.results.summary import finished_count
from hq_sweep.server.connection import ServerNotAnswering, locate_server
from hq_sweep.server.credentials import ServerRef
from hq_sweep.server.handoff import Handoff
from hq_sweep.worker.lifecycle import SweepEnded, run_worker, sweep_over
from hq_sweep.worker.warm_loop import WorkerOptions

_SERVER_POLL_S = 1.0  # while start-workers waits for a server coming back


@friendly_errors
def worker(
    sweep: SweepOption = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for a sweep to appear.")] = 60.0,
    redis_url: RedisOption = None,
    count: CountOption = None,
) -> None:
    """Run one warm worker in this process (what start-workers launches)."""
    setup_logging()
    patience = patience_s()
    connection = locate_server(redis_url, sweep=sweep).connect(patience_s=patience)
    # Found: the user's code (and what it starts) has no need of a URL exported for our CLI.
    os.environ.pop(REDIS_URL, None)
    options = WorkerOptions(count=count, redis_patience_s=patience)
    try:
        code = run_worker(connection, sweep, options, wait_s=wait)
    except SweepEnded as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        code = exc.exit_code
    except RedisUnavailable as exc:  # for the whole patience: a replacement would wait again
        console.print(f"[bold red]error:[/] the server stayed unreachable for {patience:.0f} s "
                      f"(${PATIENCE}): {exc}", highlight=False, soft_wrap=True)
        code = exitcodes.LOST_SERVER
    except HqSweepError as exc:  # its user code or sweep cannot work: restarting won't help
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        code = exitcodes.UNUSABLE
    raise typer.Exit(code)


@friendly_errors
def start_workers(
    workers: Annotated[int | None, typer.Option(
        "--workers", "-w", min=1, help="Workers (local: 2; slurm: one per GPU or task).")] = None,
    sweep: SweepOption = None,
    redis_url: RedisOption = None,
    launcher_name: Annotated[LauncherName, typer.Option(
        "--launcher", help="auto: slurm inside an allocation (salloc/sbatch), else local.")
    ] = LauncherName.AUTO,
    per_gpu: Annotated[int | None, typer.Option(
        "--workers-per-gpu", min=1, help="Workers sharing each GPU (slurm; hq: 1 GPU each).")
    ] = None,
    cpus: Annotated[int | None, typer.Option(
        "--cpus-per-worker", min=1, help="CPUs per worker (slurm CPU-only: one per C CPUs).")
    ] = None,
    count: CountOption = None,
) -> None:
    """Start warm workers (local, Slurm steps or HyperQueue) and wait until the sweep ends."""
    server = _await_server(redis_url, sweep, patience_s())
    url = server.url
    if sweep is not None:
        _refuse_finished(url, sweep)
    # A launcher that cannot run here (no allocation, no hyperqueue package, no HQ server)
    # raises a LauncherError: friendly_errors makes it one line, not a traceback.
    worker_args = ["--count", str(count)] if count is not None else []
    with Handoff(server) as handoff:  # a credentials file it wrote goes when the workers do
        launcher = make_launcher(launcher_name, handoff, sweep, workers=workers,
                                 workers_per_gpu=per_gpu, cpus_per_worker=cpus,
                                 worker_args=worker_args)
        _supervise(launcher)
    _report(launcher, url, sweep)


def _await_server(redis_url: str | None, sweep: str | None, patience: float) -> ServerRef:
    """The server, waiting up to `patience` for a recorded one that does not answer yet (it is
    being restarted, or its job has not started): workers would otherwise fail at once."""
    deadline = time.monotonic() + patience
    waiting = False
    while True:
        try:
            server = locate_server(redis_url, sweep=sweep)
        except ServerNotAnswering as exc:
            if time.monotonic() >= deadline:
                raise
            if not waiting:
                console.print(f"{exc.what}: waiting up to {patience:.0f} s for it to answer "
                              f"(${PATIENCE})", highlight=False, soft_wrap=True)
                waiting = True
            time.sleep(_SERVER_POLL_S)
            continue
        if waiting:
            console.print("the server answers", highlight=False)
        if server.file is None:  # a URL given: no file says it is coming back; fail fast
            ping(connect(server.url))
        return server


def _supervise(launcher: Launcher) -> None:
    launcher.start()
    console.print(f"started {launcher.describe()}", highlight=False)
    _forward_signals(launcher)
    try:
        launcher.wait(timeout_s=None)
    except KeyboardInterrupt:
        # Ctrl-C normally arrives as a forwarded SIGINT; a KeyboardInterrupt raised anyway
        # (another handler installed meanwhile) must not orphan the workers.
        launcher.stop()


def _report(launcher: Launcher, url: str, sweep: str | None) -> None:
    """How the workers ended, as the exit status of start-workers."""
    codes = launcher.exit_codes()
    ended = "workers ended: " + ", ".join(exitcodes.describe(c) for c in codes)
    if codes and all(code == exitcodes.ENDED for code in codes):
        fail(f"{ended}: nothing ran", exitcodes.ENDED)
    if exitcodes.LOST_SERVER in codes:
        fail(f"{ended}: the server stayed unreachable for {patience_s():.0f} s (${PATIENCE}). "
             "Start it again (`hq-sweep server start` in its state directory), then "
             "start-workers: the sweep goes on where it stopped")
    if exitcodes.UNUSABLE in codes and sweep is not None:
        stalled = SweepQueue(connect(url), sweep).meta.read().get("stalled")
        if stalled:
            fail(f"workers cannot start: {stalled}\n  {stall_fix(sweep)}", exitcodes.UNUSABLE)
    # A worker that came as the sweep ended (a replacement) has nothing to do: that is fine.
    if any(code not in exitcodes.DELIBERATE | {exitcodes.ENDED} for code in codes):
        fail(ended)
    console.print(ended)


def _refuse_finished(url: str, sweep: str) -> None:
    """Workers for a sweep that is over would each leave at once (`sweep_over`, as the
    worker itself decides): say so instead. An unknown sweep passes: workers wait for it."""
    queue = SweepQueue(connect(url), sweep)
    over = sweep_over(sweep, queue.meta.read())
    if over is not None:
        fail(f"{over} after {finished_count(queue.meta.counts())} trials: no workers "
             f"started. To run more trials: `hq-sweep enqueue FILE --sweep {sweep} --trials "
             "N`; for a new sweep, `hq-sweep enqueue FILE`", exitcodes.ENDED)


def _forward_signals(launcher: Launcher) -> None:
    """SIGTERM/SIGUSR1/SIGINT (scancel, Slurm's --signal, Ctrl-C) go on to every worker
    through the launcher; workers treat a duplicate arriving within a second (Slurm signals
    the whole step too, a terminal the whole process group) as one."""

    def forward(signum: int, frame: object) -> None:
        launcher.signal_all(signum)

    for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
        signal.signal(sig, forward)


def register_worker_commands(app: typer.Typer) -> None:
    app.command()(worker)
    app.command("start-workers")(start_workers)
