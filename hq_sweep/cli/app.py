"""`hq-sweep`: the command line. Commands that run things live here; readers in results.py."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from hq_sweep.cli.common import (
    HqSweepGroup,
    JsonOption,
    ProgressEveryOption,
    RedisOption,
    app_options,
    console,
    fail,
    friendly_errors,
    open_sweep,
    setup_logging,
)
from hq_sweep.cli.detached import spawn_controller
from hq_sweep.cli.figures import register_figure_commands
from hq_sweep.cli.lifecycle import register_lifecycle_commands
from hq_sweep.cli.local_run import (
    ControllerThread,
    LocalRun,
    Registration,
    SweepAborted,
    ensure_server,
    open_or_register,
    stored_spec,
    sweep_total,
)
from hq_sweep.cli.results import register_result_commands
from hq_sweep.cli.sbatch import register_cluster_commands
from hq_sweep.cli.server import server_app
from hq_sweep.cli.workers import register_worker_commands
from hq_sweep.controller.loop import Controller, ControllerOptions
from hq_sweep.env import PATIENCE, patience_s
from hq_sweep.errors import EXIT_NO_COMPLETE, RedisUnavailable
from hq_sweep.launchers.local import LocalLauncher
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.results.monitor import watch
from hq_sweep.results.progress import DEFAULT_EVERY_S, ProgressPrinter, headline
from hq_sweep.results.summary import failure_text, finished_count, summary
from hq_sweep.server.connection import default_state_dir, locate_server
from hq_sweep.server.credentials import ServerRef
from hq_sweep.server.handoff import Handoff
from hq_sweep.spec.sweep import SweepSpec, load_spec

app = typer.Typer(
    name="hq-sweep",
    cls=HqSweepGroup,  # one error boundary around every command (common.error_boundary)
    help="Hyperparameter sweeps with warm workers: Optuna + Redis, on a laptop or a Slurm cluster.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # Typer's rich help shows `<bool>` after every flag (typer 0.2x with click 8.2+); click's
    # plain layout reads the same in a terminal, a pipe and a batch log.
    rich_markup_mode=None,
)
app.callback()(app_options)  # --version
app.add_typer(server_app, name="server", help="Run the Redis-compatible server sweeps use.")

SpecFile = Annotated[Path, typer.Argument(
    metavar="FILE", help="Sweep file (W&B Sweeps YAML, Argo ranges).")]
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


SweepIdOption = Annotated[str | None, typer.Option(
    "--sweep", "-s", help="Sweep id: resume that sweep if it exists, else start one under it.")]
ResumeOption = Annotated[bool, typer.Option(
    "--resume", help="Resume the newest sweep named after this file, not start a new one.")]


@app.command()
@friendly_errors
def run(
    file: SpecFile,
    workers: Annotated[int, typer.Option("--workers", "-w", min=1, help="Local workers.")] = 2,
    redis_url: RedisOption = None,
    json_out: JsonOption = False,
    trials: TrialsOption = None,
    sweep: SweepIdOption = None,
    resume: ResumeOption = False,
    progress_every: ProgressEveryOption = DEFAULT_EVERY_S,
) -> None:
    """Run a whole sweep on this machine: server, controller and N warm workers.

    Exit codes: 0 the sweep ended with a complete trial; 4 it ended with none (every trial
    failed or was pruned); 3 workers cannot start (the module's import or setup() failed);
    2 bad input; 1 another failure; 130 interrupted (resume with --sweep).
    """
    spec = _with_trials(load_spec(file), trials)
    setup_logging()
    _interrupt_on_sigterm()
    server = ensure_server(redis_url,
                           say=lambda m: console.print(m, style="dim", highlight=False))
    connection = server.connect()
    registration = open_or_register(connection, spec, file, sweep, resume)
    sweep_id = registration.sweep_id
    resume_hint = f"`hq-sweep run {file} --sweep {sweep_id}" + (
        f" --trials {trials}`" if trials else "`")
    _announce(registration, file, SweepQueue(connection, sweep_id))
    local = LocalRun(connection, server, sweep_id, spec, workers, ControllerOptions())
    thread, launcher = local.start()
    console.print(f"started {launcher.describe()}", style="dim", highlight=False, markup=False)
    queue = SweepQueue(connection, sweep_id)
    started = time.monotonic()
    try:
        _follow(local, thread, launcher, sweep_total(spec), live=not json_out,
                progress_every=progress_every)
    except KeyboardInterrupt:
        launcher.stop()  # first: a trial waiting on a define-by-run suggest still gets it
        thread.abort.set()
        fail(f"interrupted: sweep {sweep_id} left unfinished; resume it with {resume_hint}", 130)
    except SweepAborted as exc:
        console.print(Text.assemble(("error:", "bold red"), f" {exc}"), soft_wrap=True)
        console.print(f"fix it, then resume the sweep with {resume_hint}", style="dim",
                      highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    finally:
        if not launcher.wait(30):
            launcher.stop()
    if thread.error is not None:
        fail(f"controller failed: {thread.error}")
    complete = _print_summary(queue, thread.reason or "", time.monotonic() - started, json_out)
    if not complete:
        raise typer.Exit(EXIT_NO_COMPLETE)


def _announce(registration: Registration, file: Path, queue: SweepQueue,
              command: str = "run") -> None:
    """Say which sweep this is: resumed, new, or new because the name was taken."""
    sweep_id = registration.sweep_id
    if registration.resumed:
        done = finished_count(queue.meta.counts())
        console.print(f"resuming sweep [bold]{sweep_id}[/] ({done} trials finished so far)",
                      highlight=False)
    elif registration.taken:
        console.print(
            f"a sweep named {registration.taken!r} exists on this server: this one is "
            f"[bold]{sweep_id}[/] (to continue {registration.taken!r} instead: "
            f"`hq-sweep {command} {file} --sweep {registration.taken}`)", highlight=False,
            soft_wrap=True)
    else:
        console.print(f"sweep [bold]{sweep_id}[/]", highlight=False)


def _interrupt_on_sigterm() -> None:
    """SIGTERM (scancel, a closing terminal) stops workers cleanly, like Ctrl-C."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _follow(
    local: LocalRun,
    thread: ControllerThread,
    launcher: LocalLauncher,
    total: int | None,
    live: bool,
    progress_every: float,
) -> None:
    queue = SweepQueue(local.connection, local.sweep_id)

    def over() -> bool:
        local.check_workers(thread, launcher)
        return not thread.is_alive()

    if live and console.is_terminal:
        watch(queue, total, until=lambda _snap: over(), console=console)
        return
    printer = ProgressPrinter(queue, total, say=_say_dim, every_s=progress_every)
    while not over():
        printer.maybe()
        thread.join(timeout=0.5)


def _say_dim(message: str) -> None:
    console.print(message, style="dim", highlight=False, markup=False)


def _print_summary(queue: SweepQueue, reason: str, elapsed: float, json_out: bool) -> int:
    """The closing lines of `run` (or its JSON); returns the number of complete trials."""
    result = summary(queue)
    trials = result["trials"]
    if json_out:
        typer.echo(json.dumps(result))
        return int(trials["complete"])
    console.print(headline(queue.sweep_id, "finished", reason, trials, elapsed),
                  style="bold", highlight=False, markup=False)
    for failure in result["failures"]:
        console.print(f"  {failure_text(failure)}", style="red", highlight=False,
                      soft_wrap=True)
    if result["failures"]:
        console.print(f"  every trial's reason: `hq-sweep export --sweep {queue.sweep_id}`",
                      style="dim", highlight=False)
    best = result["best"]
    if best:
        console.print(
            f"best: trial {best['number']} value [bold]{best['value']:.6g}[/] "
            f"params {json.dumps(best['params'])}",
            highlight=False, soft_wrap=True,
        )
    elif not trials["complete"]:
        console.print("[bold red]error:[/] no trial completed", highlight=False)
    return int(trials["complete"])


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
    resume: ResumeOption = False,
    progress_every: ProgressEveryOption = DEFAULT_EVERY_S,
) -> None:
    """Register a sweep (or resume one) and run its controller (printing a progress line
    every --progress-every seconds)."""
    spec = _with_trials(load_spec(file), trials)
    setup_logging()
    server = locate_server(redis_url)
    patience = patience_s()
    connection = server.connect(patience_s=patience)
    registration = open_or_register(connection, spec, file, sweep, resume)
    sweep_id = registration.sweep_id
    _announce(registration, file, SweepQueue(connection, sweep_id), command="enqueue")
    console.print(f"start workers with `hq-sweep start-workers --sweep {sweep_id}`",
                  highlight=False)
    if detach:
        _spawn_controller(SweepQueue(connection, sweep_id), server, lock_lease)
        return
    _run_controller(SweepQueue(connection, sweep_id), lock_lease, progress_every, patience)


def _spawn_controller(queue: SweepQueue, server: ServerRef, lock_lease: float) -> None:
    logs = default_state_dir() / "logs" / queue.sweep_id
    # The controller outlives this command: a credentials file written for it stays (0600).
    url_env = Handoff(server).env
    with console.status("starting the controller"):
        started = spawn_controller(queue, url_env, lock_lease, logs, CONTROLLER_START_S)
    if started.standing_by:
        console.print(
            f"another controller holds sweep {queue.sweep_id}: this one (pid {started.pid}, log "
            f"{started.log}) stands by and takes over when it stops"
        )
    else:
        console.print(
            f"controller running in the background (pid {started.pid}, log {started.log})"
        )


def _run_controller(queue: SweepQueue, lock_lease: float, progress_every: float,
                    patience: float) -> None:
    """The controller in this process, with a progress line every so often (its log is
    where people look: a terminal, or a batch job's output)."""
    spec = stored_spec(queue)
    options = ControllerOptions(lease_ms=int(lock_lease * 1000), patience_s=patience)
    printer = ProgressPrinter(queue, sweep_total(spec), say=_say_dim, every_s=progress_every)
    try:
        Controller(queue, spec, options).run(on_tick=printer.maybe)
    except RedisUnavailable as exc:
        fail(f"the server stayed unreachable for {patience:.0f} s (${PATIENCE}): "
             f"{str(exc).rstrip('.')}. Start "
             f"it again (`hq-sweep server start` in its state directory), then "
             f"`hq-sweep controller {queue.sweep_id}` takes the sweep up where it stopped")
    printer.finish()


@app.command("controller")
@friendly_errors
def controller_command(
    sweep: Annotated[str, typer.Argument(metavar="SWEEP", help="Sweep id.")],
    lock_lease: LeaseOption = 10.0,
    redis_url: RedisOption = None,
    progress_every: ProgressEveryOption = DEFAULT_EVERY_S,
) -> None:
    """Run (or resume, or stand by for) the controller of a registered sweep."""
    setup_logging()
    patience = patience_s()
    queue = open_sweep(locate_server(redis_url, sweep=sweep), sweep,
                       patience_s=patience)
    _run_controller(queue, lock_lease, progress_every, patience)


# Registered after the commands above, so `--help` lists run/enqueue/workers first.
register_worker_commands(app)
register_result_commands(app)
register_figure_commands(app)
register_lifecycle_commands(app)
register_cluster_commands(app)


def main() -> None:
    app()
