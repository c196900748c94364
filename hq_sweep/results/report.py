"""`hq-sweep report`: one self-contained HTML file of a sweep: its counts, the interactive
charts of figures.py (optuna.visualization's plotly figures, with plotly.js inlined once, so
the file opens offline, copied anywhere), the top trials and the stored sweep file.

Every piece of user text (sweep id, metric and parameter names, values, workers, the sweep
file) goes through html.escape; the figures' data is plotly's JSON, which escapes `<`, `>`
and `/` inside the script tags.
"""

from __future__ import annotations

import datetime
import html
import json
from typing import Any

import optuna
import yaml

from hq_sweep.messages import TrialState
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.results.figures import IMPORTANCE_METHOD, Chart, charts, draw, metric_names, require
from hq_sweep.results.summary import pareto_front, status, trial_rows

PLOT_CONFIG = {"displaylogo": False, "responsive": True}
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; }
th { background: #f2f2f2; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { background: #f7f7f7; padding: 1em; overflow-x: auto; }
.note { color: #666; } .chart { margin: 1em 0; border-bottom: 1px solid #eee; }
"""


def build_report(queue: SweepQueue, study: optuna.Study, top: int = 10) -> tuple[str, list[str]]:
    """The report's HTML and a note for each chart left out (raises NothingToPlot when the
    sweep has no complete trial)."""
    require("plotly", "report")
    from plotly.offline import get_plotlyjs

    vis = require("optuna.visualization", "report")
    planned, notes = charts(study)
    figures = _figures(vis, study, planned, notes)
    meta = queue.meta.read()
    state = status(queue)
    names = metric_names(study)
    signs = [1.0 if d is optuna.study.StudyDirection.MAXIMIZE else -1.0 for d in study.directions]
    best = ranked(trial_rows(queue, flat=True), signs, top)
    body = [
        f"<h1>Sweep {_e(queue.sweep_id)}</h1>",
        _counts(state),
        "<h2>Top trials</h2>", _top_caption(len(best), names, top), _table(best, names),
        "<h2>Charts</h2>", *figures,
        *(f'<p class="note">{_e(n)}</p>' for n in notes),
        "<h2>Sweep file</h2>",
        f"<pre>{_e(_spec_text(meta.get('spec')))}</pre>",
    ]
    title = f"hq-sweep report: {queue.sweep_id}"
    page = (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{_e(title)}</title><style>{STYLE}</style>"
            f'<script type="text/javascript">{get_plotlyjs()}</script></head>\n<body>\n'
            + "\n".join(body) + "\n</body></html>\n")
    return page, notes


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _figures(vis: Any, study: optuna.Study, planned: list[Chart], notes: list[str]) -> list[str]:
    parts = []
    for chart in planned:
        try:
            figure = draw(vis, study, chart)
        except (ValueError, RuntimeError) as exc:
            notes.append(f"{chart.stem}: left out ({exc})")
            continue
        figure.update_layout(title={"text": html.escape(chart.title)})
        div = figure.to_html(full_html=False, include_plotlyjs=False, config=PLOT_CONFIG,
                             div_id=f"chart-{chart.stem}")
        parts.append(f'<div class="chart" data-chart="{_e(chart.stem)}">{div}</div>')
    return parts


def ranked(rows: list[dict[str, Any]], signs: list[float], top: int) -> list[dict[str, Any]]:
    """The best `top` complete rows, best first; with several objectives, the Pareto set's
    (ordered by the first objective), as `hq-sweep best -k` shows them."""
    complete = [r for r in rows if r["state"] == TrialState.COMPLETE.value and r["values"]]
    ordered = sorted(complete, key=lambda r: -signs[0] * r["values"][0])
    if len(signs) > 1:
        ordered = pareto_front(ordered, signs)
    return ordered[:top]


def _counts(state: dict[str, Any]) -> str:
    finished = f" ({state['finished_reason']})" if state.get("finished_reason") else ""
    cells = "".join(f"<th>{_e(k)}</th>" for k in state["trials"])
    values = "".join(f'<td class="num">{_e(v)}</td>' for v in state["trials"].values())
    generated = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return (f"<p>state <b>{_e(state['state'])}</b>{_e(finished)}; requeued "
            f"{_e(state['requeued'])} time(s); report generated {generated}</p>"
            f"<table><tr>{cells}</tr><tr>{values}</tr></table>")


def _top_caption(shown: int, names: list[str], top: int) -> str:
    if len(names) > 1:
        what = (f"The Pareto set (no trial beats these on every objective), ordered by "
                f"{names[0]}: {shown} shown, at most {top}.")
    else:
        what = f"The {shown} best complete trials by {names[0]}, best first (at most {top})."
    return f'<p class="note">{_e(what)} Importances: {_e(IMPORTANCE_METHOD)}.</p>'


def _table(rows: list[dict[str, Any]], names: list[str]) -> str:
    params = sorted({name for row in rows for name in row["params"]})
    head = ["rank", "trial", *names, "state", "duration (s)", "worker", *params]
    lines = ['<table id="top-trials">', "<tr>" + "".join(f"<th>{_e(h)}</th>" for h in head)
             + "</tr>"]
    for rank, row in enumerate(rows, start=1):
        cells = [_num(rank), _num(row["number"]), *(_num(v) for v in row["values"]),
                 f"<td>{_e(row['state'])}</td>", _num(row["duration"]),
                 f"<td>{_e(row['worker'] or '')}</td>",
                 *(_param(row["params"].get(p, "")) for p in params)]
        lines.append('<tr class="trial">' + "".join(cells) + "</tr>")
    lines.append("</table>")
    return "\n".join(lines)


def _num(value: Any) -> str:
    shown = f"{value:.6g}" if isinstance(value, float) else ("" if value is None else value)
    return f'<td class="num">{_e(shown)}</td>'


def _param(value: Any) -> str:
    shown = value if isinstance(value, str) else json.dumps(value)
    return _num(value) if isinstance(value, int | float) else f"<td>{_e(shown)}</td>"


def _spec_text(spec_json: str | None) -> str:
    """The sweep file as stored with the sweep (normalized), as YAML."""
    if not spec_json:
        return "(no sweep file stored)"
    try:
        return yaml.safe_dump(json.loads(spec_json), sort_keys=False, allow_unicode=True)
    except (ValueError, yaml.YAMLError):
        return spec_json

