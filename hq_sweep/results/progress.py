"""Plain progress for batch logs and pipes: one line every so often, and a closing summary.

Where there is no terminal (an sbatch log, `| tee`), a live view cannot redraw; these lines
say the same at a glance and read well the next morning. Pure functions of a Snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hq_sweep.queue.lock_token import missing_controller
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.results.monitor import RateMeter, Snapshot, duration, take_snapshot
from hq_sweep.results.summary import failure_text, finished_count

DEFAULT_EVERY_S = 30.0


def progress_line(snap: Snapshot) -> str:
    """How far, how fast, what is best: one line."""
    counts = snap.counts
    total = f"/{snap.total}" if snap.total else ""
    running = f"running {snap.running}" + (
        f" (+{snap.claimed_ahead} claimed)" if snap.claimed_ahead else "")
    parts = [
        f"{snap.sweep} {snap.state}: {snap.finished}{total} trials",
        f"complete {counts.get('complete', 0)} pruned {counts.get('pruned', 0)} "
        f"failed {counts.get('failed', 0)}",
        running,
        f"{snap.workers} workers",
        f"{snap.rate * 60:.1f} trials/min",
        f"elapsed {duration(snap.elapsed)}",
    ]
    if snap.total and snap.rate > 0 and snap.state == "running":
        parts.append(f"ETA {duration((snap.total - snap.finished) / snap.rate)}")
    if snap.best:
        parts.append(f"best {snap.metric} {snap.best['value']:.6g} (trial {snap.best['number']})")
    if snap.stalled:
        parts.append(f"STALLED: workers cannot start: {snap.stalled}")
    elif warning := missing_controller(snap.sweep, snap.controller, snap.state):
        parts.append(warning)
    return " | ".join(parts)


def headline(sweep: str, state: str, reason: str, counts: dict[str, int],
             elapsed: float) -> str:
    """`sweep S finished (run_cap) in 1 min 00 s: 150 complete, 40 pruned, 10 failed
    (200.0 trials/min)`: the first closing line of `run`, `monitor` and a controller."""
    ended = finished_count(counts)
    return (f"sweep {sweep} {state}" + (f" ({reason})" if reason else "")
            + f" in {duration(elapsed)}: {counts.get('complete', 0)} complete, "
            f"{counts.get('pruned', 0)} pruned, {counts.get('failed', 0)} failed "
            f"({ended / max(elapsed, 1e-9) * 60:.1f} trials/min)")


def summary_lines(snap: Snapshot) -> list[str]:
    """The closing lines: counts, duration and throughput, best, failures."""
    lines = [headline(snap.sweep, snap.state, snap.finished_reason, snap.counts, snap.elapsed)]
    if snap.best:
        lines.append(f"best {snap.metric} ({snap.goal}) {snap.best['value']:.6g}: "
                     f"trial {snap.best['number']}")
    lines.extend(f"  {failure_text(f)}" for f in snap.failures)
    return lines


class ProgressPrinter:
    """Prints a progress line when `every_s` has passed since the last (and at the first
    call); cheap to call often."""

    def __init__(self, queue: SweepQueue, total: int | None, say: Callable[[str], None],
                 every_s: float = DEFAULT_EVERY_S) -> None:
        self.queue, self.total, self.say, self.every_s = queue, total, say, every_s
        self.meter, self.started = RateMeter(window_s=max(every_s * 2, 10.0)), time.monotonic()
        self._last: float | None = None

    def snapshot(self) -> Snapshot:
        return take_snapshot(self.queue, self.meter, self.total, self.started)

    def maybe(self, snap: Snapshot | None = None) -> None:
        now = time.monotonic()
        if self._last is None or now - self._last >= self.every_s:
            self._last = now
            self.say(progress_line(snap or self.snapshot()))

    def finish(self, snap: Snapshot | None = None) -> None:
        for line in summary_lines(snap or self.snapshot()):
            self.say(line)


def follow(printer: ProgressPrinter, done: Callable[[Snapshot], bool],
           poll_s: float = 1.0) -> Snapshot:
    """Progress lines until `done(snapshot)`, then the summary; returns the last snapshot."""
    while True:
        snap = printer.snapshot()
        if done(snap):
            printer.finish(snap)
            return snap
        printer.maybe(snap)
        time.sleep(poll_s)
