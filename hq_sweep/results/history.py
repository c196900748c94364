"""How the sweep got where it is, for the monitor: a best-so-far sparkline and the latest
finished trials. Pure functions of what a snapshot read (the controller's list of new bests,
the last few trial records), so they cost nothing at 100,000 trials.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text

from hq_sweep.messages import TrialRecord

BLOCKS = "▁▂▃▄▅▆▇█"


def best_so_far(points: Sequence[tuple[int, float]], upto: int, width: int) -> list[float]:
    """The best value after trials 0 .. upto-1, in `width` even steps of trial number
    (from the first best on: there is nothing to draw before it)."""
    if not points or upto <= 0 or width <= 0:
        return []
    first = points[0][0]
    span = max(upto - first, 1)
    values, index, current = [points[0][1]], 1, points[0][1]  # from the first best on
    for step in range(1, width):
        reached = first + span * step / width  # trials up to this number have ended
        while index < len(points) and points[index][0] < reached:
            current = points[index][1]
            index += 1
        values.append(current)
    return values


def sparkline(values: Sequence[float]) -> str:
    """One block character per value, lowest to highest (a flat line for one value)."""
    if not values:
        return ""
    low, high = min(values), max(values)
    if high <= low:
        return BLOCKS[0] * len(values)
    scale = (len(BLOCKS) - 1) / (high - low)
    return "".join(BLOCKS[round((v - low) * scale)] for v in values)


def best_line(points: Sequence[tuple[int, float]], upto: int, width: int) -> Text | None:
    """`best so far ▇▇▅▅▃▂▂▁ 0.81 -> 0.0132 (7 improvements)`, or None before any best."""
    values = best_so_far(points, upto, width)
    if not values:
        return None
    return Text.assemble(("best so far ", "dim"), (sparkline(values), "cyan"),
                         (f" {points[0][1]:.4g} -> {points[-1][1]:.4g} "
                          f"({len(points)} improvements)", "dim"),
                         overflow="ellipsis", no_wrap=True)


def recent_table(records: Sequence[TrialRecord], metric: str) -> Table:
    """The latest finished trials, newest first: number, state, value, seconds, worker."""
    table = Table(box=None, padding=(0, 1), pad_edge=False, show_edge=False, header_style="dim",
                  title="latest trials", title_justify="left", title_style="dim")
    for column in ("trial", "state", metric, "s", "worker", "params"):
        table.add_column(column, no_wrap=True, overflow="ellipsis",
                         justify="right" if column in ("trial", metric, "s") else "left",
                         max_width=60 if column == "params" else None)
    for record in records:
        value = f"{record.values[0]:.6g}" if record.values else "-"
        seconds = f"{record.duration:.2f}" if record.duration is not None else "-"
        params = ", ".join(f"{k}={_short(v)}" for k, v in (record.params or {}).items())
        state = record.state.value if record.state is not None else "?"
        table.add_row(str(record.number), state, value, seconds, record.worker, params)
    return table


def _short(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)
