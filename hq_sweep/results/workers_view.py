"""The monitor's workers table: who serves the sweep, what each runs now, who has gone quiet.

Built from the heartbeats (`queue.workers`): a worker beats every lease/4 seconds, so one not
heard from for a while is stuck or gone (killed: it could not say), and its trials come back
when their leases expire. A worker that leaves says why, and is listed so for a while.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from rich.table import Table
from rich.text import Text

STALE_S = 10.0  # no heartbeat for this long: shown as stale
SHOWN_S = 120.0  # heartbeats older than this are left out (the worker has left)


@dataclass(frozen=True, slots=True)
class WorkerRow:
    name: str
    node: str
    gpu: str
    trial: int | None  # the trial it runs now
    trial_age: float | None  # seconds it has been running
    done: int | None  # trials it has run
    quiet_s: float  # seconds since its last heartbeat
    left: str = ""  # why it left ("" while it serves)
    ends: float | None = None  # its allocation's end (epoch seconds), inside a Slurm job

    @property
    def stale(self) -> bool:
        return not self.left and self.quiet_s > STALE_S

    @property
    def state(self) -> str:
        if self.left:
            return f"left: {self.left}"
        if self.stale:
            return "STALE"
        return "running" if self.trial is not None else "idle"


def worker_rows(beats: dict[str, dict[str, Any]], now: float | None = None) -> list[WorkerRow]:
    """One row per worker heard from in the last SHOWN_S seconds, by name."""
    now = time.time() if now is None else now
    rows = []
    for name, info in sorted(beats.items()):
        try:
            quiet = now - float(info.get("seen", 0))
        except (TypeError, ValueError):
            continue
        if quiet > SHOWN_S:
            continue
        trial = info.get("trial") if isinstance(info.get("trial"), dict) else None
        rows.append(WorkerRow(
            name=name, node=str(info.get("node") or ""), gpu=str(info.get("gpu") or ""),
            trial=_int(trial.get("number")) if trial else None,
            trial_age=now - float(trial["since"]) if trial and _number(trial.get("since"))
            else None,
            done=_int(info.get("done")), quiet_s=max(0.0, quiet),
            left=str(info.get("left") or ""),
            ends=float(info["ends"]) if _number(info.get("ends")) else None))
    return rows


def allocation_ends(rows: list[WorkerRow]) -> float | None:
    """The soonest end of the allocations serving workers run in (None: none known)."""
    ends = [row.ends for row in rows if row.ends is not None and not row.left]
    return min(ends) if ends else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def workers_table(rows: list[WorkerRow], limit: int = 12) -> Table:
    """Name, node, GPU, state, current trial and its age, trials done, seconds since heard
    from; stale workers in yellow, those that left dim. At most `limit` rows (serving ones
    first; the rest counted)."""
    table = Table(box=None, padding=(0, 1), pad_edge=False, show_edge=False, header_style="dim")
    for column in ("worker", "node", "gpu", "state", "trial", "for", "done", "heard"):
        table.add_column(column, no_wrap=True, overflow="ellipsis",
                         justify="right" if column in ("trial", "for", "done", "heard")
                         else "left", max_width=40 if column == "state" else None)
    ordered = sorted(rows, key=lambda row: bool(row.left))
    for row in ordered[:limit]:
        style = "yellow" if row.stale else ("dim" if row.left else "")
        table.add_row(
            row.name, row.node, row.gpu or "-", Text(row.state, style or "green"),
            "-" if row.trial is None else str(row.trial),
            "-" if row.trial_age is None else f"{row.trial_age:.0f} s",
            "-" if row.done is None else str(row.done),
            Text(f"{row.quiet_s:.0f} s ago", style or "dim"), style=style or None,
        )
    if len(rows) > limit:
        table.add_row(f"... {len(rows) - limit} more", *[""] * 7)
    return table
