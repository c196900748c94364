"""`hq-sweep`: the command line. Commands that run things live here; readers in results.py."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Annotated

import typer

from hq_sweep import exitcodes
from hq_sweep.cli.common import (
    CountOption,
    JsonOption,
    RedisOption,
    SweepOption,
    console,
    fail,
    friendly_errors,
    open_sweep,
    setup_logging,
)
from hq_sweep.cli.detached import spawn_controller
from hq_sweep.cli.local_run import (
    ControllerThread,
    LocalRun,
    ensure_server,
    register_sweep,
    stored_spec,
    sweep_total,
)
from hq_sweep.cli.results import register_result_commands
from hq_sweep.cli.sbatch import register_cluster_commands
from hq_sweep.cli.server import server_app
from hq_sweep.controller.loop import Controller, ControllerOptions
from hq_sweep.errors import HqSweepError
from hq_sweep.launchers.local import REDIS_URL_VAR, LocalLauncher
from hq_sweep.launchers.registry import Launcher, LauncherName, make_launcher
from hq_sweep.queue.client import connect
from hq_sweep.queue.registry import SweepRegistry
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.results.monitor import watch
from hq_sweep.results.summary import summary
from hq_sweep.server.connection import default_state_dir, resolve_redis_url
from hq_sweep.spec.sweep import SweepSpec, load_spec
from hq_sweep.worker.lifecycle import run_worker
from hq_sweep.worker.warm_loop import WorkerOptions

app = typer.Typer(
    name="hq-sweep",
    help="Hyperparameter sweeps with warm workers: Optuna + Redis, on a laptop or a Slurm cluster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(server_app, name="server", help="Run the Redis-compatible server sweeps use.")

SpecFile = Annotated[Path, typer.Argument(help="Sweep file (W&B Sweeps YAML, Argo ranges).")]
TrialsOption = Annotated[
    int | None, typer.Option("--trials", "-n", min=1, help="Override run_cap: trials to run.")
]
# A detached controller imports Optuna and rebuilds the study before it takes the sweep.
CONTROLLER_START_S = 60.0
LeaseOption = Annotated[
    float, typer.Option("--lock-lease", min=0.5, help="Controller lock lease in seconds.")
]


def _with_trials(spec: SweepSpec, trials: int | None) -> SweepSpec:
    return spec if trials is None else spec.model_copy(update={"run_cap": trials})


@app.command()
@friendly_errors
def run(
    file: SpecFile,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Local workers.")] = 2,
    redis_url: RedisOption = None,
    json_out: JsonOption = False,
    trials: TrialsOption = None,
) -> None:
    """Run a whole sweep on this machine: server, controller and N warm workers."""
    spec = _with_trials(load_spec(file), trials)
    setup_logging()
    _interrupt_on_sigterm()
    url = ensure_server(redis_url, say=lambda m: console.print(m, style="dim", highlight=False))
    connection = connect(url)
    sweep_id = register_sweep(connection, spec, file)
    local = LocalRun(connection, url, sweep_id, spec, workers, ControllerOptions())
    thread, launcher = local.start()
    queue = SweepQueue(connection, sweep_id)
    started = time.monotonic()
    try:
        _follow(queue, thread, launcher, sweep_total(spec), live=not json_out)
    except KeyboardInterrupt:
        thread.abort.set()
        launcher.stop()
        again = f" --trials {trials}" if trials else ""
        fail(f"interrupted: sweep {sweep_id} left unfinished; resume it with "
             f"`hq-sweep enqueue {file} --sweep {sweep_id}{again}` and workers", 130)
    finally:
        if not launcher.wait(30):
            launcher.stop()
    if thread.error is not None:
        fail(f"controller failed: {thread.error}")
    _print_summary(queue, thread.reason or "", time.monotonic() - started, json_out)


def _interrupt_on_sigterm() -> None:
    """SIGTERM (scancel, a closing terminal) stops workers cleanly, like Ctrl-C."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _follow(
    queue: SweepQueue,
    thread: ControllerThread,
    launcher: LocalLauncher,
    total: int | None,
    live: bool,
) -> None:
    def over() -> bool:
        LocalRun.check_workers(thread, launcher)
        return not thread.is_alive()

    if live and console.is_terminal:
        watch(queue, total, until=over, console=console)
        return
    last = 0.0
    while not over():
        thread.join(timeout=0.5)
        if time.monotonic() - last >= 5.0:
            last = time.monotonic()
            counts = queue.meta.counts()
            done = sum(counts.get(s, 0) for s in ("complete", "pruned", "failed"))
            console.print(
                f"{queue.sweep_id}: {done}/{total or '?'} trials finished "
                f"({counts.get('running', 0)} running)",
                style="dim",
                highlight=False,
            )


def _print_summary(queue: SweepQueue, reason: str, elapsed: float, json_out: bool) -> None:
    result = summary(queue)
    if json_out:
        typer.echo(json.dumps(result))
        return
    trials = result["trials"]
    console.print(
        f"[bold]sweep {queue.sweep_id} finished[/] ({reason}) in {elapsed:.1f} s: "
        f"{trials['complete']} complete, {trials['pruned']} pruned, "
        f"{trials['failed']} failed"
    )
    best = result["best"]
    if best:
        console.print(
            f"best: trial {best['number']} value [bold]{best['value']:.6g}[/] "
            f"params {json.dumps(best['params'])}",
            highlight=False,
        )


@app.command()
@friendly_errors
def enqueue(
    file: SpecFile,
    sweep: Annotated[
        str | None,
        typer.Option("--sweep", "-s", help="Sweep id; an existing id resumes that sweep."),
    ] = None,
    detach: Annotated[bool, typer.Option(help="Run the controller in the background.")] = False,
    trials: TrialsOption = None,
    lock_lease: LeaseOption = 10.0,
    redis_url: RedisOption = None,
) -> None:
    """Register a sweep (or resume one) and run its controller."""
    spec = _with_trials(load_spec(file), trials)
    setup_logging()
    url = resolve_redis_url(redis_url)
    connection = connect(url)
    registry = SweepRegistry(connection)
    if sweep is not None and registry.exists(sweep):
        stored = stored_spec(SweepQueue(connection, sweep))
        if stored.spec_hash() != spec.spec_hash():
            fail(f"sweep {sweep!r} exists with a different sweep file; pick another --sweep")
        sweep_id = sweep
        console.print(f"resuming sweep [bold]{sweep_id}[/]")
    else:
        sweep_id = register_sweep(connection, spec, file, sweep_id=sweep)
        console.print(
            f"registered sweep [bold]{sweep_id}[/]; start workers with "
            f"`hq-sweep start-workers --sweep {sweep_id}`"
        )
    if detach:
        _spawn_controller(SweepQueue(connection, sweep_id), url, lock_lease)
        return
    _run_controller(SweepQueue(connection, sweep_id), lock_lease)


def _spawn_controller(queue: SweepQueue, url: str, lock_lease: float) -> None:
    logs = default_state_dir() / "logs" / queue.sweep_id
    with console.status("starting the controller"):
        started = spawn_controller(
            queue, {REDIS_URL_VAR: url}, lock_lease, logs, CONTROLLER_START_S
        )
    if started.standing_by:
        console.print(
            f"another controller holds sweep {queue.sweep_id}: this one (pid {started.pid}, log "
            f"{started.log}) stands by and takes over when it stops"
        )
    else:
        console.print(
            f"controller running in the background (pid {started.pid}, log {started.log})"
        )


def _run_controller(queue: SweepQueue, lock_lease: float) -> None:
    spec = stored_spec(queue)
    options = ControllerOptions(lease_ms=int(lock_lease * 1000))
    reason = Controller(queue, spec, options).run()
    counts = queue.meta.counts()
    console.print(
        f"sweep {queue.sweep_id} finished ({reason}): "
        + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("complete", "pruned", "failed"))
    )


@app.command("controller")
@friendly_errors
def controller_command(
    sweep: Annotated[str, typer.Argument(help="Sweep id.")],
    lock_lease: LeaseOption = 10.0,
    redis_url: RedisOption = None,
) -> None:
    """Run (or resume, or stand by for) the controller of a registered sweep."""
    setup_logging()
    _run_controller(open_sweep(resolve_redis_url(redis_url), sweep), lock_lease)


@app.command()
@friendly_errors
def worker(
    sweep: SweepOption = None,
    wait: Annotated[float, typer.Option(help="Seconds to wait for a sweep to appear.")] = 60.0,
    redis_url: RedisOption = None,
    count: CountOption = None,
) -> None:
    """Run one warm worker in this process (what start-workers launches)."""
    setup_logging()
    connection = connect(resolve_redis_url(redis_url))
    try:
        code = run_worker(connection, sweep, WorkerOptions(count=count), wait_s=wait)
    except HqSweepError as exc:  # its user code or sweep cannot work: restarting won't help
        console.print(f"[bold red]error:[/] {exc}", highlight=False)
        code = exitcodes.UNUSABLE
    raise typer.Exit(code)


@app.command("start-workers")
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
    url = resolve_redis_url(redis_url)
    # A launcher that cannot run here (no allocation, no hyperqueue package, no HQ server)
    # raises a LauncherError: friendly_errors makes it one line, not a traceback.
    worker_args = ["--count", str(count)] if count is not None else []
    launcher = make_launcher(launcher_name, url, sweep, workers=workers,
                             workers_per_gpu=per_gpu, cpus_per_worker=cpus,
                             worker_args=worker_args)
    launcher.start()
    console.print(f"started {launcher.describe()}", highlight=False)
    _forward_signals(launcher)
    try:
        launcher.wait(timeout_s=None)
    except KeyboardInterrupt:
        # Ctrl-C normally arrives as a forwarded SIGINT; a KeyboardInterrupt raised anyway
        # (another handler installed meanwhile) must not orphan the workers.
        launcher.stop()
    codes = launcher.exit_codes()
    ended = "workers ended: " + ", ".join(exitcodes.describe(c) for c in codes)
    if any(code not in exitcodes.DELIBERATE for code in codes):
        fail(ended)
    console.print(ended)


def _forward_signals(launcher: Launcher) -> None:
    """SIGTERM/SIGUSR1/SIGINT (scancel, Slurm's --signal, Ctrl-C) go on to every worker
    through the launcher; workers treat a duplicate arriving within a second (Slurm signals
    the whole step too, a terminal the whole process group) as one."""

    def forward(signum: int, frame: object) -> None:
        launcher.signal_all(signum)

    for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT):
        signal.signal(sig, forward)


# Registered after the commands above, so `--help` lists run/enqueue/workers first.
register_result_commands(app)
register_cluster_commands(app)


def main() -> None:
    app()
