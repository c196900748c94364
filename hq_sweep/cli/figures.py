"""Commands that draw a sweep: `plot` (PNG files) and `report` (one self-contained HTML file).

Both find the sweep as `export` does (--sweep, --redis, --state-dir) and read its finished
trials as an in-memory Optuna study (results/optuna_study.py). matplotlib and plotly are the
optional extra `plots`, imported only when these commands draw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import optuna
import typer
from rich.markup import escape

from hq_sweep.cli.common import RedisOption, SweepOption, console, friendly_errors, open_sweep, out
from hq_sweep.cli.local_run import stored_spec
from hq_sweep.cli.reading import ReadStateDirOption, sweep_server
from hq_sweep.controller.space import build_space
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.results.optuna_study import study_of_sweep

OutDirOption = Annotated[Path, typer.Option(
    "--out", file_okay=False, help="Folder for the PNG files (made if missing).")]
ReportOption = Annotated[Path, typer.Option(
    "--output", "-o", dir_okay=False, help="The HTML file to write.")]
TopOption = Annotated[int, typer.Option(
    "--top", "-k", min=1, help="Trials in the top-trials table (multi-objective: of the Pareto "
    "set).")]


def _study(queue: SweepQueue) -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = stored_spec(queue)
    return study_of_sweep(queue, spec, build_space(spec))


def _notes(notes: list[str]) -> None:
    for note in notes:
        console.print(f"note: {note}", style="yellow", highlight=False, markup=False,
                      soft_wrap=True)


@friendly_errors
def plot(
    out_dir: OutDirOption,
    sweep: SweepOption = None,
    redis_url: RedisOption = None,
    state_dir: ReadStateDirOption = None,
) -> None:
    """PNG charts of a sweep: optimization history, parallel coordinates, parameter
    importances (fANOVA), intermediate values, the Pareto front (several objectives).

    Prints each file written; a chart the sweep cannot fill yet is left out with a note.
    Exit codes: 0 written; 2 no complete trial (nothing to plot), or matplotlib missing."""
    from hq_sweep.results.plots import write_pngs

    with sweep_server(redis_url, sweep, state_dir) as url:
        study = _study(open_sweep(url, sweep))
    show = out()
    written, notes = write_pngs(study, out_dir, lambda line: show.print(
        line, highlight=False, markup=False, soft_wrap=True))
    _notes(notes)
    console.print(f"wrote {len(written)} chart(s) to {escape(str(out_dir))}", highlight=False)


@friendly_errors
def report(
    output: ReportOption = Path("report.html"),
    sweep: SweepOption = None,
    redis_url: RedisOption = None,
    state_dir: ReadStateDirOption = None,
    top: TopOption = 10,
) -> None:
    """One self-contained HTML file of a sweep (opens offline): counts, interactive charts,
    the top trials and the sweep file.

    Exit codes: 0 written; 2 no complete trial yet, or plotly missing."""
    from hq_sweep.results.report import build_report

    with sweep_server(redis_url, sweep, state_dir) as url:
        queue = open_sweep(url, sweep)
        page, notes = build_report(queue, _study(queue), top)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(page, encoding="utf-8")
    _notes(notes)
    out().print(str(output), highlight=False, markup=False, soft_wrap=True)


def register_figure_commands(app: typer.Typer) -> None:
    app.command()(plot)
    app.command()(report)
