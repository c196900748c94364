"""Ending sweeps and seeing them all: stop, cancel, delete, list.

Results (the list table, `--json` objects) go to stdout; messages about what was done go to
stderr. Exit codes: 0 done; 1 an error (no server, no such sweep, or `delete` timed out
waiting for the controller); 2 refused (`delete` without `--yes`, or of a sweep that still
runs, without `--force`).
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from hq_sweep.cli.common import JsonOption, RedisOption, console, friendly_errors, open_sweep
from hq_sweep.errors import EXIT_INVALID, HqSweepError
from hq_sweep.queue.client import connect
from hq_sweep.queue.lifecycle import (
    Mode,
    StopReport,
    SweepOverview,
    SweepStillRunning,
    delete_sweep,
    overviews,
    request_stop,
    sweep_keys,
    wait_for_no_controller,
)
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.results.summary import iso_time
from hq_sweep.server.connection import resolve_redis_url

SweepArgument = Annotated[str, typer.Argument(
    metavar="SWEEP", help="Sweep id (`hq-sweep list` shows them).", show_default=False)]
_COUNTED = ("complete", "pruned", "failed", "cancelled", "running", "queued")


class NotConfirmed(HqSweepError):
    """`delete` without `--yes`."""

    exit_code = EXIT_INVALID


class _Refused(SweepStillRunning):
    exit_code = EXIT_INVALID


# ---- stop / cancel ----------------------------------------------------------------------


def _describe(sweep: str, report: StopReport) -> str:
    """What a stop or cancel did, and what happens next, in a few lines."""
    if report.already_finished:
        return f"sweep {sweep} has already finished: nothing to {report.mode}"
    done = f"{report.withdrawn} queued trial(s) withdrawn"
    if report.lost:
        done += f", {report.lost} whose worker was lost cancelled"
    if report.state == "finished":
        how = "cancelled" if report.mode == "cancel" else "stopped"
        return f"sweep {sweep} {how}: {done}; nothing was running"
    running = (f"{report.running} running trial(s) are being cancelled (at their next report "
               f"or heartbeat)" if report.mode == "cancel"
               else f"{report.running} running trial(s) finish first")
    if report.controller is not None:
        return (f"sweep {sweep} stopping: {done}; {running}; then its controller "
                f"({report.controller}) ends it (`hq-sweep status --sweep {sweep}`)")
    return (f"sweep {sweep} stopping: {done}; {running}. No controller holds this sweep: its "
            f"workers still record those trials; run `hq-sweep {report.mode} {sweep}` again "
            f"once they have ended (or `hq-sweep controller {sweep}`) to mark it finished. A "
            f"trial whose worker is gone is cancelled by that once its lease expires.")


def _end(sweep: str, redis_url: str | None, mode: Mode, json_out: bool) -> None:
    queue = open_sweep(resolve_redis_url(redis_url, sweep=sweep), sweep)
    report = request_stop(queue, mode)
    if json_out:
        typer.echo(json.dumps({"sweep": sweep, **asdict(report)}))
    console.print(_describe(sweep, report), highlight=False, soft_wrap=True)


@friendly_errors
def stop(sweep: SweepArgument, redis_url: RedisOption = None,
         json_out: JsonOption = False) -> None:
    """Stop a sweep: no new trials; running trials finish and are recorded; queued ones are
    withdrawn (recorded as cancelled). Its controller ends the sweep once nothing runs
    (finished_reason "stopped by user"); workers then leave with exit code 0. Exit 0 when
    asked (or already finished), 1 on an error (no server, no such sweep)."""
    _end(sweep, redis_url, "stop", json_out)


@friendly_errors
def cancel(sweep: SweepArgument, redis_url: RedisOption = None,
           json_out: JsonOption = False) -> None:
    """Cancel a sweep: as `stop`, but running trials are abandoned now (a command-mode
    program gets SIGTERM, a Python objective stops at its next report) and recorded as
    cancelled; results that still arrive for them do not count. Exit 0 when asked (or
    already finished), 1 on an error (no server, no such sweep)."""
    _end(sweep, redis_url, "cancel", json_out)


# ---- delete -----------------------------------------------------------------------------


def _wind_down(queue: SweepQueue, force: bool, timeout_s: float) -> None:
    """A sweep still running or winding down: cancel it (with --force) and wait for its
    controller to end it, so nothing writes its keys again after they are gone."""
    state = queue.meta.state()
    if state == "running" and not force:
        raise _Refused(f"sweep {queue.sweep_id} is still running: `hq-sweep stop "
                       f"{queue.sweep_id}` (or `cancel`) first, or add --force to cancel it "
                       f"and delete it")
    if state == "running":
        request_stop(queue, "cancel")
        console.print(f"sweep {queue.sweep_id}: cancelled; waiting for it to end",
                      highlight=False)
    if not wait_for_no_controller(queue, timeout_s):
        running = queue.meta.counts().get("running", 0)
        raise SweepStillRunning(
            f"sweep {queue.sweep_id} is still winding down after {timeout_s:g} s ({running} "
            f"trial(s) running, controller {queue.lock.holder() or 'none'}): try again later, "
            f"or `hq-sweep cancel {queue.sweep_id}` to abandon its running trials")


@friendly_errors
def delete(
    sweep: SweepArgument,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Really delete.")] = False,
    force: Annotated[bool, typer.Option(
        "--force", help="Delete a sweep that still runs (it is cancelled first).")] = False,
    timeout: Annotated[float, typer.Option(
        "--timeout", min=0, help="Seconds to wait for a stopping sweep's controller.")] = 30.0,
    redis_url: RedisOption = None,
) -> None:
    """Delete a sweep: every key it has on the server (trials, results, queue) and its entry
    in the sweep list; other sweeps are untouched. A running sweep must be stopped or
    cancelled first, or --force given (which cancels it, then deletes it). Exit 0 deleted,
    1 an error (or its controller did not end it within --timeout), 2 refused (no --yes; or
    still running, without --force)."""
    queue = open_sweep(resolve_redis_url(redis_url, sweep=sweep), sweep)
    trials = int(queue.meta.read().get("next") or 0)
    state = queue.meta.state() or "unknown"
    if not yes:
        keys = len(sweep_keys(queue))
        note = "; it is still running: --force cancels it first" if state == "running" else ""
        raise NotConfirmed(f"would delete sweep {sweep} ({state}): {trials} trial(s), {keys} "
                           f"key(s){note}. Run again with --yes to delete it")
    if state in ("running", "stopping"):
        _wind_down(queue, force, timeout)
    removed = delete_sweep(queue)
    console.print(f"deleted sweep {sweep}: {trials} trial(s), {removed} key(s)", highlight=False)


# ---- list -------------------------------------------------------------------------------


def age(seconds: float) -> str:
    """'12 s ago', '3 min ago', '2 h ago', '5 d ago'."""
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return f"{int(seconds)} s ago"


def overview_json(row: SweepOverview) -> dict[str, Any]:
    return {"sweep": row.sweep, "state": row.state,
            "trials": {state: row.counts.get(state, 0) for state in _COUNTED},
            "best": row.best, "created": iso_time(row.created),
            "finished_reason": row.finished_reason or None}


def overview_table(rows: list[SweepOverview], now: float) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for name in ("sweep", "state", "complete", "pruned", "failed", "running", "best",
                 "created"):
        justify = "right" if name in _COUNTED or name == "best" else "left"
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for row in rows:
        best = "-" if row.best is None else f"{row.best:.6g}"
        counts = [str(row.counts.get(s, 0)) for s in ("complete", "pruned", "failed", "running")]
        table.add_row(row.sweep, row.state, *counts, best, age(now - row.created))
    return table


def stdout_console() -> Console:
    """Results on stdout; not a terminal (a pipe, a file): no wrapping, no colour."""
    if sys.stdout.isatty():
        return Console(file=sys.stdout)
    return Console(file=sys.stdout, soft_wrap=True, width=100_000, color_system=None)


@friendly_errors
def list_command(redis_url: RedisOption = None, json_out: JsonOption = False) -> None:
    """Sweeps on the server, oldest first: state (running, stopping, finished, stopped,
    cancelled), trials complete/pruned/failed/running, best value, age. A table on stdout;
    --json prints a list of objects (`created` as ISO-8601 UTC). Exit 0, 1 on an error."""
    rows = overviews(connect(resolve_redis_url(redis_url)))
    if json_out:
        typer.echo(json.dumps([overview_json(row) for row in rows]))
        return
    if not rows:
        console.print("no sweeps on this server yet")
        return
    stdout_console().print(overview_table(rows, time.time()))


def register_lifecycle_commands(app: typer.Typer) -> None:
    app.command()(stop)
    app.command()(cancel)
    app.command()(delete)
    app.command("list")(list_command)
