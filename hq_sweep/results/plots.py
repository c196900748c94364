"""`hq-sweep plot`: a sweep's charts (see figures.py) as PNG files, drawn by
optuna.visualization.matplotlib on matplotlib's Agg backend (no display needed)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna

from hq_sweep.results.figures import Chart, charts, draw, require

WIDTH_IN, HEIGHT_IN, DPI = 9.0, 5.5, 110


def write_pngs(study: optuna.Study, out_dir: Path,
               say: Callable[[str], None]) -> tuple[list[Path], list[str]]:
    """Each chart the study can show as OUT_DIR/<stem>.png; returns the files written and a
    note for each chart left out (raises NothingToPlot when the sweep has no complete trial)."""
    backend = _backend()
    planned, notes = charts(study)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for chart in planned:
        try:
            path = _save(backend, study, chart, out_dir)
        except (ValueError, RuntimeError) as exc:
            notes.append(f"{chart.stem}: left out ({exc})")
            continue
        written.append(path)
        say(str(path))
    return written, notes


def _backend() -> Any:
    matplotlib = require("matplotlib", "plot")
    matplotlib.use("Agg", force=True)
    require("matplotlib.pyplot", "plot")
    return require("optuna.visualization.matplotlib", "plot")


def _save(backend: Any, study: optuna.Study, chart: Chart, out_dir: Path) -> Path:
    import matplotlib.pyplot as plt

    drawn = draw(backend, study, chart)
    axes = drawn.flat[0] if hasattr(drawn, "flat") else drawn
    figure = axes.get_figure()
    try:
        if hasattr(drawn, "flat"):
            figure.suptitle(chart.title)
        else:  # Optuna's own title, wherever it put it, becomes ours
            for loc in ("left", "right"):
                axes.set_title("", loc=loc)
            axes.set_title(chart.title)
        figure.set_size_inches(WIDTH_IN, HEIGHT_IN)
        path = out_dir / f"{chart.stem}.png"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # tight_layout on a crowded figure
            figure.savefig(path, dpi=DPI, bbox_inches="tight")
        return path
    finally:
        plt.close(figure)
