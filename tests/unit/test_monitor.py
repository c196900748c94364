"""The monitor's pure render(snapshot)."""

from __future__ import annotations

from rich.console import Console

from hq_sweep.results.monitor import Snapshot, render


def _text(snap: Snapshot) -> str:
    console = Console(width=120, record=True, color_system=None)
    console.print(render(snap, 120))
    return console.export_text()


def test_render_shows_progress_counts_rate_and_best() -> None:
    snap = Snapshot(
        sweep="digits", state="running",
        counts={"queued": 4, "running": 2, "complete": 40, "pruned": 9, "failed": 1},
        total=200, best={"number": 17, "value": 0.9812, "params": {"lr": 0.0031, "m": "mlp"}},
        workers=2, rate=12.5, elapsed=31.0, goal="maximize", metric="val_accuracy",
        controller="n1 pid 42",
    )
    text = _text(snap)
    assert "sweep digits  running" in text and "val_accuracy: maximize" in text
    assert "50/200 trials" in text and "750/min" in text and "2 workers" in text
    assert "ETA 12 s" in text  # 150 trials left at 12.5/s
    assert "complete 40" in text and "pruned 9" in text and "failed 1" in text
    assert "best val_accuracy 0.9812  trial 17" in text
    assert "lr=0.0031, m=mlp" in text
    assert "no controller" not in text


def test_render_warns_when_a_running_sweep_has_no_controller() -> None:
    snap = Snapshot(sweep="s", state="running", counts={"queued": 3}, total=10, best=None,
                    workers=2, rate=0.0, elapsed=5.0, controller=None)
    assert "no controller holds this sweep" in _text(snap)
    assert "hq-sweep controller s" in _text(snap)


def test_render_before_any_result_and_when_finished() -> None:
    snap = Snapshot(sweep="s", state="finished", counts={}, total=None, best=None, workers=0,
                    rate=0.0, elapsed=0.0, finished_reason="run_cap")
    text = _text(snap)
    assert "0 trials" in text and "best" not in text
    assert "finished: run_cap" in text


def test_render_lists_the_commonest_failures_with_their_line() -> None:
    failures = ({"kind": "ValueError", "count": 12, "line": "ValueError: lr too big (t.py:8)"},
                {"kind": "invalid result", "count": 6, "line": "objective's return value is nan"})
    snap = Snapshot(sweep="s", state="running", counts={"failed": 18, "complete": 12},
                    total=30, best=None, workers=2, rate=1.0, elapsed=9.0, controller="n1 pid 4",
                    failures=failures)
    text = _text(snap)
    assert "12 failed: ValueError: lr too big (t.py:8)" in text  # the kind said once
    assert "6 failed: invalid result: objective's return value is nan" in text


def test_render_a_stalled_sweep_says_why_and_the_real_fix() -> None:
    snap = Snapshot(sweep="s", state="stalled", counts={"queued": 3}, total=10, best=None,
                    workers=0, rate=0.0, elapsed=5.0, controller="n1 pid 4",
                    stalled="w0: setup() failed: OSError: no data (m.py:3)")
    text = _text(snap)
    assert "stalled: workers cannot start: w0: setup() failed: OSError: no data (m.py:3)" in text
    assert "start-workers --sweep s" in text and "hq-sweep controller" not in text


def test_render_shows_each_worker_its_trial_and_the_stale_ones() -> None:
    from hq_sweep.results.workers_view import worker_rows

    now = 1000.0
    beats = {"n1-0": {"node": "n1", "gpu": "0", "seen": now - 1,
                      "trial": {"number": 41, "since": now - 12.0}, "done": 40},
             "n2-0": {"node": "n2", "gpu": "0", "seen": now - 30, "trial": None, "done": 7},
             "gone": {"node": "n3", "seen": now - 500}}
    rows = tuple(worker_rows(beats, now=now))
    assert [r.name for r in rows] == ["n1-0", "n2-0"]  # heard from lately only
    snap = Snapshot(sweep="s", state="running", counts={"running": 1}, total=None, best=None,
                    workers=1, rate=0.0, elapsed=5.0, controller="c pid 1", worker_rows=rows)
    text = _text(snap)
    line = next(line for line in text.splitlines() if line.startswith("n1-0"))
    assert line.split() == ["n1-0", "n1", "0", "running", "41", "12", "s", "40", "1", "s", "ago"]
    stale = next(line for line in text.splitlines() if line.startswith("n2-0"))
    assert "STALE" in stale and "30 s ago" in stale


def test_a_worker_that_left_says_why_and_allocations_say_when_they_end() -> None:
    import time

    from hq_sweep.results.workers_view import worker_rows

    now = time.time()
    beats = {"n1-0": {"node": "n1", "seen": now - 1, "trial": None, "done": 3,
                      "ends": now + 3725},
             "n2-0": {"node": "n2", "seen": now - 40, "trial": None, "done": 9,
                      "left": "drained after SIGUSR1 (walltime warning)", "ends": now + 5}}
    snap = Snapshot(sweep="s", state="running", counts={}, total=None, best=None, workers=1,
                    rate=0.0, elapsed=5.0, controller="c pid 1",
                    worker_rows=tuple(worker_rows(beats, now=now)))
    text = _text(snap)
    gone = next(line for line in text.splitlines() if line.startswith("n2-0"))
    assert "left: drained after SIGUSR1" in gone and "STALE" not in gone
    assert "allocation ends in 1 h 02 min" in text  # the serving worker's, not the departed's


def test_best_so_far_is_drawn_and_a_wide_terminal_lists_the_latest_trials() -> None:
    from hq_sweep.messages import TrialRecord, TrialState

    points = ((0, 9.0), (3, 4.0), (10, 1.0), (40, 0.5))
    recent = (TrialRecord(41, TrialState.COMPLETE, values=[0.7], duration=0.25, worker="w1",
                          params={"lr": 0.01}),)
    snap = Snapshot(sweep="s", state="running", counts={"complete": 42}, total=None,
                    best={"number": 40, "value": 0.5, "params": {}}, workers=1, rate=1.0,
                    elapsed=5.0, controller="c pid 1", best_points=points, recent=recent,
                    next_number=42)
    text = _text(snap)
    line = next(line for line in text.splitlines() if line.startswith("best so far"))
    assert "9 -> 0.5 (4 improvements)" in line and "█" in line and "▁" in line
    assert "latest trials" in text and "lr=0.01" in text
    narrow = Console(width=80, record=True, color_system=None)
    narrow.print(render(snap, 80))
    shown = narrow.export_text()
    assert "latest trials" not in shown and all(len(row) <= 80 for row in shown.splitlines())


def test_the_cost_so_far_has_its_line() -> None:
    snap = Snapshot(sweep="s", state="running", counts={"complete": 3}, total=None, best=None,
                    workers=1, rate=1.0, elapsed=5.0, controller="c pid 1",
                    cost="cost: 1.8 GPU-h, 3.2 trial-h, peak RSS 2.1 GB")
    assert "cost: 1.8 GPU-h, 3.2 trial-h, peak RSS 2.1 GB" in _text(snap)
