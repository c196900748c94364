"""Commands that read: validate, status, best, export, monitor (`list`: lifecycle.py)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from hq_sweep import exitcodes
from hq_sweep.cli.common import (
    JsonOption,
    ProgressEveryOption,
    RedisOption,
    SweepOption,
    console,
    fail,
    friendly_errors,
    open_sweep,
    out,
)
from hq_sweep.cli.local_run import stored_spec, sweep_total
from hq_sweep.cli.reading import ReadStateDirOption, sweep_server
from hq_sweep.controller.space import build_space, summary_lines
from hq_sweep.queue.lock_token import missing_controller
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.results.cost import cost_line
from hq_sweep.results.monitor import Snapshot, stall_fix, watch
from hq_sweep.results.optuna_study import redacted, study_of_sweep
from hq_sweep.results.parquet import write_parquet
from hq_sweep.results.progress import DEFAULT_EVERY_S, ProgressPrinter, follow, progress_line
from hq_sweep.results.summary import (
    best,
    failure_text,
    multi_objective,
    status,
    to_csv,
    top_failures,
    top_trials,
    trial_rows,
)
from hq_sweep.server.connection import locate_server
from hq_sweep.spec.sweep import load_spec


@friendly_errors
def validate(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Sweep file to check.")],
) -> None:
    """Check a sweep file; print its normalized summary (exit 2 and every error if invalid)."""
    spec = load_spec(file)
    for line in summary_lines(spec, build_space(spec)):
        typer.echo(line)


@friendly_errors
def status_command(
    sweep: SweepOption = None, redis_url: RedisOption = None, json_out: JsonOption = False,
    state_dir: ReadStateDirOption = None,
) -> None:
    """Counts of trials per state, retries and failures."""
    with sweep_server(redis_url, sweep, state_dir) as url:
        result = status(open_sweep(url, sweep))
    if json_out:
        typer.echo(json.dumps(result))
        return
    show = out()
    show.print(
        f"sweep [bold]{escape(result['sweep'])}[/]: {result['state']}"
        + (f" ({escape(result['finished_reason'])})" if result["finished_reason"] else "")
    )
    show.print("  " + "  ".join(f"{k} {v}" for k, v in result["trials"].items()))
    show.print(f"  requeued {result['requeued']} time(s) (lease expired or handed back)")
    failures = top_failures(result["failures"], result["failure_lines"], limit=10)
    for failure in failures:
        show.print(f"  {failure_text(failure)}", style="red", highlight=False, markup=False)
    if failures:
        show.print(f"  every trial's reason: `hq-sweep export --sweep {result['sweep']}`",
                   highlight=False, markup=False)
    show.print(f"  {cost_line(result['cost'])}", highlight=False, markup=False)
    show.print(f"  workers alive: {result['workers']}")
    if result["state"] == "stalled":
        show.print(f"  workers cannot start: {result['stalled']}", style="bold red",
                   highlight=False, markup=False)
        console.print(stall_fix(result["sweep"]), style="yellow", highlight=False, markup=False)
    else:
        _print_controller(show, result)
    if result["quarantined"]:
        console.print(f"[yellow]{result['quarantined']} malformed message(s)[/] set aside in "
                      f"Redis list hqs:s:{escape(result['sweep'])}:quarantine")


def _print_controller(show: Console, result: dict[str, Any]) -> None:
    if result["controller"] is not None:
        show.print(f"  controller: {escape(result['controller'])}")
    elif warning := missing_controller(result["sweep"], None, result["state"]):
        console.print(warning, style="yellow", highlight=False, markup=False)


TopOption = Annotated[int | None, typer.Option(
    "--top", "-k", min=1, show_default=False,
    help="The K best complete trials, best first (multi-objective: of the Pareto set).")]
FlatOption = Annotated[bool, typer.Option(
    "--flat", help="Params with dotted names (model.depth), not nested as in the sweep file.")]


@friendly_errors
def best_command(
    sweep: SweepOption = None,
    redis_url: RedisOption = None,
    json_out: JsonOption = False,
    top: TopOption = None,
    flat: FlatOption = False,
    state_dir: ReadStateDirOption = None,
) -> None:
    """The best trial so far: number, value, params (multi-objective: the Pareto set)."""
    with sweep_server(redis_url, sweep, state_dir) as url:
        _best(open_sweep(url, sweep), json_out, top, flat)


def _best(queue: SweepQueue, json_out: bool, top: int | None, flat: bool) -> None:
    if top is None and not multi_objective(queue):
        _show_best(best(queue, flat=flat), json_out)
    else:
        _show_top(top_trials(queue, top, flat=flat), json_out)


def _show_best(found: dict[str, Any] | None, json_out: bool) -> None:
    if json_out:
        typer.echo(json.dumps(found))
        return
    if found is None:
        fail("no complete trial yet")
    show = out()
    show.print(f"trial {found['number']}: value [bold]{found['value']:.6g}[/]")
    show.print_json(json.dumps(found["params"]))


def _show_top(trials: list[dict[str, Any]], json_out: bool) -> None:
    if json_out:
        typer.echo(json.dumps(trials))
        return
    if not trials:
        fail("no complete trial yet")
    show = out()
    for trial in trials:
        if "value" in trial:
            score = ("value ", (f"{trial['value']:.6g}", "bold"))
        else:
            score = ("values ", (", ".join(f"{v:.6g}" for v in trial["values"]), "bold"))
        show.print(Text.assemble(f"trial {trial['number']}: ", *score, "  ",
                                 json.dumps(trial["params"])))


OptunaStorageOption = Annotated[str | None, typer.Option(
    "--optuna-storage", metavar="URL", show_default=False,
    help="Write the finished trials as an Optuna study to this storage (sqlite:///study.db) "
    "instead, for optuna.load_study and optuna-dashboard.")]
StudyNameOption = Annotated[str | None, typer.Option(
    "--study-name", show_default=False,
    help="The study's name in --optuna-storage (default: the sweep id); refused if taken.")]


@friendly_errors
def export(
    sweep: SweepOption = None,
    fmt: Annotated[str, typer.Option(
        "--format", "-f", help="csv, json or parquet (parquet: with -o; needs pyarrow).")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default stdout).")
    ] = None,
    redis_url: RedisOption = None,
    flat: FlatOption = False,
    state_dir: ReadStateDirOption = None,
    optuna_storage: OptunaStorageOption = None,
    study_name: StudyNameOption = None,
) -> None:
    """Write every trial (params, values, state, timings, metrics, intermediate values) as CSV
    or Parquet (flat: params.a.b columns) or JSON (params nested as in the sweep file); with
    --optuna-storage, the finished trials as an Optuna study in that storage."""
    if fmt not in ("csv", "json", "parquet"):
        fail(f"--format: must be csv, json or parquet (got {fmt!r})", 2)
    if fmt == "parquet" and output is None:
        fail("--format parquet: give the file with --output/-o (Parquet is binary)", 2)
    if optuna_storage is None and study_name is not None:
        fail("--study-name: goes with --optuna-storage", 2)
    if optuna_storage is not None and output is not None:
        fail("--output: not with --optuna-storage (the study goes to that storage)", 2)
    with sweep_server(redis_url, sweep, state_dir) as url:
        queue = open_sweep(url, sweep)
        if optuna_storage is not None:
            _export_study(queue, optuna_storage, study_name or queue.sweep_id)
            return
        rows = trial_rows(queue, flat=flat or fmt != "json")
    if fmt == "parquet" and output is not None:
        write_parquet(rows, output)
        console.print(f"wrote {len(rows)} trials to {escape(str(output))}", highlight=False)
        return
    text = to_csv(rows) if fmt == "csv" else json.dumps(rows, indent=1) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        console.print(f"wrote {len(rows)} trials to {escape(str(output))}", highlight=False)


def _export_study(queue: SweepQueue, storage: str, name: str) -> None:
    """The sweep's finished trials as study `name` in `storage` (a new study: refused, exit 2,
    when the name is taken there)."""
    spec = stored_spec(queue)
    study = study_of_sweep(queue, spec, build_space(spec), storage=storage, study_name=name)
    left_out = int(queue.meta.read().get("next") or 0) - len(study.trials)
    shown = redacted(storage)
    console.print(f"wrote {len(study.trials)} finished trials of sweep {queue.sweep_id} to "
                  f"Optuna study {name!r} in {shown}"
                  + (f" ({left_out} cancelled or unfinished left out)" if left_out else ""),
                  highlight=False, markup=False, soft_wrap=True)
    console.print(f"open it with `optuna-dashboard {shown}` or "
                  f"optuna.load_study(study_name={name!r}, storage={shown!r})",
                  style="dim", highlight=False, markup=False, soft_wrap=True)


@friendly_errors
def monitor(
    sweep: SweepOption = None,
    redis_url: RedisOption = None,
    once: Annotated[bool, typer.Option(
        "--once", help="Print one plain snapshot on stdout and exit.")] = False,
    progress_every: ProgressEveryOption = DEFAULT_EVERY_S,
) -> None:
    """Live view of a sweep until it finishes (Ctrl-C leaves); outside a terminal, a plain
    progress line every --progress-every seconds and a closing summary.

    Exit codes: 0 finished (or Ctrl-C); 3 stalled: its workers cannot start (the view says
    why and what to do)."""
    queue = open_sweep(locate_server(redis_url, sweep=sweep), sweep)  # follows a move
    total = sweep_total(stored_spec(queue))
    if once:
        snap = ProgressPrinter(queue, total, say=_say_out).snapshot()
        _say_out(progress_line(snap))
        for failure in snap.failures:
            _say_out(f"  {failure_text(failure)}")
    else:
        snap = _follow_sweep(queue, total, progress_every)
    if snap.state == "stalled":
        console.print(f"workers cannot start: {snap.stalled}", style="red", highlight=False,
                      soft_wrap=True)
        console.print(stall_fix(snap.sweep), style="yellow", highlight=False, soft_wrap=True)
        raise typer.Exit(exitcodes.UNUSABLE)


def _follow_sweep(queue: SweepQueue, total: int | None, progress_every: float) -> Snapshot:
    def done(snap: Snapshot) -> bool:
        return snap.state not in ("running", "stopping")

    try:
        if not console.is_terminal:
            say = functools.partial(console.print, highlight=False, markup=False)
            return follow(ProgressPrinter(queue, total, say, progress_every), done)
        snap = watch(queue, total, console=console, until=done)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    console.print(f"sweep {snap.sweep} {snap.state}", highlight=False)
    return snap


def _say_out(line: str) -> None:
    out().print(line, highlight=False, markup=False)


def register_result_commands(app: typer.Typer) -> None:
    app.command()(validate)
    app.command("status")(status_command)
    app.command("best")(best_command)
    app.command()(export)
    app.command()(monitor)
