"""Commands that read: validate, status, best, export, monitor, list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from hq_sweep.cli.common import (
    JsonOption,
    RedisOption,
    SweepOption,
    console,
    fail,
    friendly_errors,
    open_sweep,
)
from hq_sweep.cli.local_run import stored_spec, sweep_total
from hq_sweep.controller.space import build_space, summary_lines
from hq_sweep.queue.client import connect
from hq_sweep.queue.lock_token import missing_controller
from hq_sweep.queue.registry import SweepRegistry
from hq_sweep.results.monitor import watch
from hq_sweep.results.summary import best, status, to_csv, trial_rows
from hq_sweep.server.connection import resolve_redis_url
from hq_sweep.spec.sweep import load_spec


@friendly_errors
def validate(file: Annotated[Path, typer.Argument(help="Sweep file to check.")]) -> None:
    """Check a sweep file; print its normalized summary (exit 2 and every error if invalid)."""
    spec = load_spec(file)
    for line in summary_lines(spec, build_space(spec)):
        typer.echo(line)


@friendly_errors
def status_command(
    sweep: SweepOption = None, redis_url: RedisOption = None, json_out: JsonOption = False
) -> None:
    """Counts of trials per state, retries and failures."""
    queue = open_sweep(resolve_redis_url(redis_url), sweep)
    result = status(queue)
    if json_out:
        typer.echo(json.dumps(result))
        return
    console.print(
        f"sweep [bold]{result['sweep']}[/]: {result['state']}"
        + (f" ({result['finished_reason']})" if result["finished_reason"] else "")
    )
    console.print("  " + "  ".join(f"{k} {v}" for k, v in result["trials"].items()))
    console.print(f"  requeued {result['requeued']} time(s) (lease expired or handed back)")
    if result["failures"]:
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(result["failures"].items()))
        console.print(f"  failures by kind: {kinds}  (`hq-sweep export` has each reason)")
    console.print(f"  workers alive: {result['workers']}")
    _print_controller(result)
    if result["quarantined"]:
        console.print(f"  [yellow]{result['quarantined']} malformed message(s)[/] set aside in "
                      f"Redis list hqs:s:{result['sweep']}:quarantine")


def _print_controller(result: dict[str, Any]) -> None:
    if result["controller"] is not None:
        console.print(f"  controller: {result['controller']}")
    elif warning := missing_controller(result["sweep"], None, result["state"]):
        console.print(f"  {warning}", style="yellow", highlight=False)


@friendly_errors
def best_command(
    sweep: SweepOption = None, redis_url: RedisOption = None, json_out: JsonOption = False
) -> None:
    """The best trial so far: number, value, params."""
    found = best(open_sweep(resolve_redis_url(redis_url), sweep))
    if json_out:
        typer.echo(json.dumps(found))
        return
    if found is None:
        fail("no complete trial yet")
    console.print(f"trial {found['number']}: value [bold]{found['value']:.6g}[/]")
    console.print_json(json.dumps(found["params"]))


@friendly_errors
def export(
    sweep: SweepOption = None,
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv or json.")] = "csv",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File (default stdout).")
    ] = None,
    redis_url: RedisOption = None,
) -> None:
    """Write every trial (params, values, state, timings, intermediate values) as CSV or JSON."""
    if fmt not in ("csv", "json"):
        fail(f"--format: must be csv or json (got {fmt!r})", 2)
    rows = trial_rows(open_sweep(resolve_redis_url(redis_url), sweep))
    text = to_csv(rows) if fmt == "csv" else json.dumps(rows, indent=1) + "\n"
    if output is None:
        typer.echo(text, nl=False)
    else:
        output.write_text(text)
        console.print(f"wrote {len(rows)} trials to {output}")


@friendly_errors
def monitor(sweep: SweepOption = None, redis_url: RedisOption = None) -> None:
    """Live view of a sweep until it finishes (Ctrl-C leaves)."""
    queue = open_sweep(resolve_redis_url(redis_url), sweep)
    total = sweep_total(stored_spec(queue))
    try:
        snap = watch(queue, total, until=lambda: queue.meta.state() != "running", console=console)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None
    console.print(f"sweep {snap.sweep} {snap.state}")


@friendly_errors
def list_command(redis_url: RedisOption = None, json_out: JsonOption = False) -> None:
    """Sweeps on the server, oldest first."""
    connection = connect(resolve_redis_url(redis_url))
    sweeps = SweepRegistry(connection).list()
    if json_out:
        typer.echo(json.dumps(sweeps))
        return
    for sweep_id in sweeps:
        typer.echo(sweep_id)


def register_result_commands(app: typer.Typer) -> None:
    app.command()(validate)
    app.command("status")(status_command)
    app.command("best")(best_command)
    app.command()(export)
    app.command()(monitor)
    app.command("list")(list_command)
