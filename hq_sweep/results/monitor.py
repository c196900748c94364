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

from hq_sweep.messages import FINISHED_STATES, TrialRecord
from hq_sweep.queue.lock_token import describe_holder, missing_controller
from hq_sweep.queue.meta import decode_best
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.queue.workers import live_beats
from hq_sweep.results.cost import cost_line, cost_totals
from hq_sweep.results.history import best_line, recent_table
from hq_sweep.results.summary import failure_text, sweep_state, top_failures
from hq_sweep.results.workers_view import WorkerRow, allocation_ends, worker_rows, workers_table

FINISHED = tuple(s.value for s in FINISHED_STATES)
RECENT_SHOWN = 6  # latest trials in a wide terminal
WIDE = 120  # columns from which the latest trials are shown too


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
    method: str = ""  # "bayes (tpe)"
    mean_trial_s: float | None = None  # recent trials' mean run time (the controller's)
    best_points: tuple[tuple[int, float], ...] = ()  # (trial, value) of each new best
    recent: tuple[TrialRecord, ...] = ()  # the latest finished trials, newest first
    next_number: int = 0  # trials asked so far
    cost: str = ""  # "cost: 1.8 GPU-h, 3.2 trial-h, peak RSS 2.1 GB" (kept totals)

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
    best = decode_best(meta.get("best"))
    spec = _stored_spec(meta)
    metric = spec.get("metric")
    metric = metric if isinstance(metric, dict) else {}
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
        method=_method(spec),
        mean_trial_s=_float(meta.get("mean_trial_s")),
        best_points=tuple(queue.meta.best_points()),
        recent=tuple(_recent(queue, _int(meta.get("next")))),
        next_number=_int(meta.get("next")),
        cost=cost_line(cost_totals(queue)) if finished else "",
    )


def _stored_spec(meta: dict[str, str]) -> dict[str, Any]:
    """The stored sweep file as a mapping ({} when it does not read: the monitor shows the
    counts anyway; commands that need the spec say what is wrong with it)."""
    try:
        spec = json.loads(meta.get("spec") or "{}")
    except (ValueError, RecursionError):
        return {}
    return spec if isinstance(spec, dict) else {}


def _method(spec: dict[str, Any]) -> str:
    sampler = spec.get("sampler") or {}
    name = sampler.get("name") if isinstance(sampler, dict) else None
    method = str(spec.get("method", ""))
    return f"{method} ({name})" if name else method


def _float(raw: str | None) -> float | None:
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def _int(raw: str | None) -> int:
    try:
        return int(raw or 0)
    except ValueError:
        return 0


def _recent(queue: SweepQueue, upto: int, shown: int = RECENT_SHOWN) -> list[TrialRecord]:
    """The latest finished trials among the last few asked (a pipelined read, not a scan)."""
    records = queue.trials.records_for(range(max(0, upto - 4 * shown), upto))
    done = [r for r in records if r.state is not None and r.state.finished]
    return sorted(done, key=lambda r: r.ended_at or 0.0, reverse=True)[:shown]


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


def render(snap: Snapshot, width: int = 80) -> RenderableType:
    """The monitor's screen for one snapshot, `width` columns wide; pure, so it is tested
    without a terminal."""
    parts: list[RenderableType] = [_header(snap), _progress(snap, width), _counts(snap)]
    if snap.best:
        parts.append(Text.assemble(
            (f"best {snap.metric} ", "dim"), (f"{snap.best['value']:.6g}", "bold"),
            f"  trial {snap.best['number']}  ", (_format_params(snap.best["params"]), "dim"),
            overflow="ellipsis", no_wrap=True))
    if (sparkline := best_line(snap.best_points, snap.next_number, min(40, width - 50))):
        parts.append(sparkline)
    parts.extend(Text(f"  {failure_text(f)}", "red", overflow="ellipsis", no_wrap=True)
                 for f in snap.failures)
    if snap.worker_rows and snap.state in ("running", "stopping"):
        parts.append(workers_table(list(snap.worker_rows)))
    if snap.cost:
        parts.append(Text(snap.cost, "dim"))
    if (ends := allocation_ends(list(snap.worker_rows))) is not None:
        parts.append(Text(f"allocation ends in {duration(ends - time.time())}", "dim"))
    if snap.recent and width >= WIDE:
        parts.append(recent_table(snap.recent, snap.metric))
    if snap.stalled:
        parts.append(Text(f"stalled: workers cannot start: {snap.stalled}", "bold red"))
        parts.append(Text(stall_fix(snap.sweep), "yellow"))
    elif snap.finished_reason:
        parts.append(Text(f"finished: {snap.finished_reason}", "yellow"))
    elif warning := missing_controller(snap.sweep, snap.controller, snap.state):
        parts.append(Text(warning, "yellow"))
    return Group(*parts)


def _header(snap: Snapshot) -> Text:
    """`sweep digits  running  bayes (tpe)  accuracy: maximize`."""
    return Text.assemble(
        ("sweep ", "dim"), (snap.sweep, "bold cyan"), "  ",
        (snap.state, "green" if snap.state == "running" else "yellow"),
        (f"  {snap.method}" if snap.method else "", "dim"),
        (f"  {snap.metric}: {snap.goal}", "dim"), overflow="ellipsis", no_wrap=True)


def _progress(snap: Snapshot, width: int) -> Group:
    """The bar, then how far, how fast (recent trials/min, mean trial), for how long, ETA."""
    done = snap.finished
    bar = ProgressBar(total=float(snap.total or max(done, 1)), completed=float(done),
                      width=max(10, min(40, width - 70)))
    parts = [f"{done}/{snap.total} trials" if snap.total else f"{done} trials",
             f"{snap.rate * 60:,.0f}/min"]
    if snap.mean_trial_s is not None:
        parts.append(f"{snap.mean_trial_s:.3g} s/trial")
    parts += [f"{snap.workers} workers", duration(snap.elapsed)]
    if snap.total and snap.rate > 0 and snap.state == "running":
        parts.append(f"ETA {duration((snap.total - done) / snap.rate)}")
    return Group(bar, Text(" " + "  ".join(parts), overflow="ellipsis", no_wrap=True))


def _counts(snap: Snapshot) -> Table:
    table = Table.grid(padding=(0, 2))
    shown = {**snap.counts, "running": snap.running}
    cells = [Text(f"{state} {shown.get(state, 0)}", style)
             for state, style in (("queued", "dim"), ("running", "blue"), ("complete", "green"),
                                  ("pruned", "yellow"), ("failed", "red"))]
    if snap.claimed_ahead:  # taken by a worker with its batch, not started yet
        cells.insert(2, Text(f"claimed {snap.claimed_ahead}", "dim"))
    if snap.counts.get("requeued"):
        cells.append(Text(f"requeued {snap.counts['requeued']}", "magenta"))
    table.add_row(*cells)
    return table


def duration(seconds: float) -> str:
    """`42 s`, `7 min 05 s`, `3 h 02 min`."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


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
    console = console or Console(stderr=True)
    with Live(render(snap, console.width), console=console, refresh_per_second=4,
              transient=False) as live:
        while not until(snap):
            time.sleep(refresh_s)
            snap = take_snapshot(queue, meter, total, started)
            live.update(render(snap, console.width))
        snap = take_snapshot(queue, meter, total, started)
        live.update(render(snap, console.width))
    if not live.console.is_terminal:
        live.console.line()  # Live leaves its last frame unterminated outside a terminal
    return snap
