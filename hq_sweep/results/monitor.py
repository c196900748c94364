"""The live view: a pure `render(snapshot)` plus a polling loop around rich.Live.

Snapshots read kept counters (one HGETALL each), never a scan, so they stay cheap at
100,000 trials.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from hq_sweep.messages import FINISHED_STATES
from hq_sweep.queue.lock_token import describe_holder, missing_controller
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.queue.workers import live_beats
from hq_sweep.results.summary import failure_text, sweep_state, top_failures
from hq_sweep.results.workers_view import WorkerRow, worker_rows, workers_table

FINISHED = tuple(s.value for s in FINISHED_STATES)


@dataclass(frozen=True, slots=True)
class Snapshot:
    sweep: str
    state: str
    counts: dict[str, int]
    total: int | None  # trials the sweep will run, when known (run_cap, grid size)
    best: dict[str, Any] | None
    workers: int
    rate: float  # finished trials per second: recent while running, overall once finished
    elapsed: float  # seconds since the sweep was created (to its end, once finished)
    goal: str = "minimize"
    metric: str = "value"
    finished_reason: str = ""
    controller: str | None = None  # "HOST pid N" of the controller holding the sweep
    stalled: str = ""  # why workers cannot start, when none is left running
    failures: tuple[dict[str, Any], ...] = ()  # the commonest failure kinds (top_failures)
    executing: int | None = None  # trials workers are running now (None: not announced)
    worker_rows: tuple[WorkerRow, ...] = ()  # the workers heard from lately (workers_view)

    @property
    def finished(self) -> int:
        return sum(self.counts.get(s, 0) for s in FINISHED)

    @property
    def running(self) -> int:
        """Trials being run right now (claimed-ahead ones wait in a worker's batch)."""
        claimed = self.counts.get("running", 0)
        return claimed if self.executing is None else min(self.executing, claimed)

    @property
    def claimed_ahead(self) -> int:
        return self.counts.get("running", 0) - self.running


@dataclass
class RateMeter:
    """Finished trials per second over a sliding window of recent samples."""

    window_s: float = 5.0
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def update(self, finished: int) -> float:
        now = time.monotonic()
        self.samples.append((now, finished))
        while len(self.samples) > 2 and now - self.samples[0][0] > self.window_s:
            self.samples.popleft()
        (t0, f0), (t1, f1) = self.samples[0], self.samples[-1]
        return (f1 - f0) / (t1 - t0) if t1 > t0 else 0.0


def take_snapshot(
    queue: SweepQueue, meter: RateMeter, total: int | None, started: float
) -> Snapshot:
    meta = queue.meta.read()
    counts = queue.meta.counts()
    best = json.loads(meta["best"]) if meta.get("best") else None
    spec = json.loads(meta.get("spec") or "{}")
    metric = spec.get("metric") or {}
    finished = sum(counts.get(s, 0) for s in FINISHED)
    heard = queue.workers.all()
    beats = live_beats(heard, within_s=10.0)
    workers = len(beats)
    state = sweep_state(meta, workers)
    elapsed = _sweep_age(meta, fallback=time.monotonic() - started)
    failures = (top_failures(queue.meta.failure_kinds(), queue.meta.failure_lines())
                if counts.get("failed") else [])
    return Snapshot(
        sweep=queue.sweep_id,
        state=state,
        counts=counts,
        total=total,
        best=best,
        workers=workers,
        rate=meter.update(finished) if state != "finished" else finished / max(elapsed, 1e-9),
        elapsed=elapsed,
        goal=metric.get("goal", "minimize"),
        metric=metric.get("name", "value"),
        finished_reason=meta.get("finished_reason", ""),
        controller=describe_holder(queue.lock.holder()),
        stalled=meta.get("stalled", "") if state == "stalled" else "",
        failures=tuple(failures),
        executing=_executing(beats),
        worker_rows=tuple(worker_rows(heard)),
    )


def _sweep_age(meta: dict[str, str], fallback: float) -> float:
    """Seconds from the sweep's creation to now, or to its end once it finished."""
    try:
        created = float(meta["created"])
        end = float(meta["finished_at"]) if meta.get("state") == "finished" else time.time()
    except (KeyError, ValueError):
        return fallback
    return max(0.0, end - created)


def _executing(beats: dict[str, dict[str, Any]]) -> int | None:
    """Workers running a trial now; None while some heartbeat does not say (an older worker)."""
    if not beats or not all("trial" in info for info in beats.values()):
        return None
    return sum(1 for info in beats.values() if info.get("trial"))


def _format_params(params: dict[str, Any], limit: int = 120) -> str:
    flat = ", ".join(f"{k}={_short(v)}" for k, v in params.items())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return "{" + _format_params(value, 60) + "}"
    return str(value)


def render(snap: Snapshot) -> RenderableType:
    """The monitor's screen for one snapshot; pure, so it is tested without a terminal."""
    done = snap.finished
    header = Text.assemble(
        ("sweep ", "dim"),
        (snap.sweep, "bold cyan"),
        "  ",
        (snap.state, "green" if snap.state == "running" else "yellow"),
    )
    bar = ProgressBar(total=float(snap.total or max(done, 1)), completed=float(done), width=40)
    total = f"{done}/{snap.total}" if snap.total else f"{done}"
    line = Text(
        f" {total} trials  {snap.rate:,.1f}/s  {snap.workers} workers  {snap.elapsed:,.0f} s"
    )
    table = Table.grid(padding=(0, 2))
    shown = {**snap.counts, "running": snap.running}
    cells = [Text(f"{state} {shown.get(state, 0)}", style)
             for state, style in (("queued", "dim"), ("running", "blue"), ("complete", "green"),
                                  ("pruned", "yellow"), ("failed", "red"))]
    if snap.claimed_ahead:  # taken by a worker with its batch, not started yet
        cells.insert(2, Text(f"claimed {snap.claimed_ahead}", "dim"))
    table.add_row(*cells)
    parts: list[RenderableType] = [header, Group(bar, line), table]
    if snap.best:
        parts.append(
            Text.assemble(
                (f"best {snap.metric} ({snap.goal}) ", "dim"),
                (f"{snap.best['value']:.6g}", "bold"),
                f"  trial {snap.best['number']}  ",
                (_format_params(snap.best["params"]), "dim"),
            )
        )
    parts.extend(Text(f"  {failure_text(f)}", "red", overflow="ellipsis", no_wrap=True)
                 for f in snap.failures)
    if snap.worker_rows and snap.state in ("running", "stopping"):
        parts.append(workers_table(list(snap.worker_rows)))
    if snap.stalled:
        parts.append(Text(f"stalled: workers cannot start: {snap.stalled}", "bold red"))
        parts.append(Text(stall_fix(snap.sweep), "yellow"))
    elif snap.finished_reason:
        parts.append(Text(f"finished: {snap.finished_reason}", "yellow"))
    elif warning := missing_controller(snap.sweep, snap.controller, snap.state):
        parts.append(Text(warning, "yellow"))
    return Group(*parts)


def stall_fix(sweep: str) -> str:
    """What to do about a stalled sweep: the controller is fine, the workers' code is not."""
    return (f"fix the error above, then start workers again: `hq-sweep start-workers --sweep "
            f"{sweep}` (the sweep keeps its trials; its controller need not restart)")


def watch(
    queue: SweepQueue,
    total: int | None,
    until: Callable[[Snapshot], bool],
    console: Console | None = None,
    refresh_s: float = 0.25,
) -> Snapshot:
    """Show the live view until `until(snapshot)` is true; returns the last snapshot."""
    meter, started = RateMeter(), time.monotonic()
    snap = take_snapshot(queue, meter, total, started)
    with Live(
        render(snap), console=console or Console(stderr=True), refresh_per_second=4, transient=False
    ) as live:
        while not until(snap):
            time.sleep(refresh_s)
            snap = take_snapshot(queue, meter, total, started)
            live.update(render(snap))
        snap = take_snapshot(queue, meter, total, started)
        live.update(render(snap))
    if not live.console.is_terminal:
        live.console.line()  # Live leaves its last frame unterminated outside a terminal
    return snap
