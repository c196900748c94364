"""Plain progress lines and the closing summary, for batch logs (pure functions)."""

from __future__ import annotations

from hq_sweep.results.monitor import Snapshot
from hq_sweep.results.progress import duration, progress_line, summary_lines


def _snap(**changes: object) -> Snapshot:
    base: dict[str, object] = dict(
        sweep="digits", state="running", total=200, workers=2, rate=0.5, elapsed=125.0,
        counts={"queued": 3, "running": 6, "complete": 40, "pruned": 8, "failed": 2},
        best={"number": 17, "value": 0.9812, "params": {}}, metric="val_accuracy",
        goal="maximize", controller="n1 pid 4", executing=2)
    base.update(changes)
    return Snapshot(**base)  # type: ignore[arg-type]


def test_durations_read_at_a_glance() -> None:
    assert [duration(s) for s in (0, 42, 425, 10_920)] == ["0 s", "42 s", "7 min 05 s",
                                                           "3 h 02 min"]


def test_a_progress_line_says_how_far_how_fast_and_what_is_best() -> None:
    line = progress_line(_snap())
    assert line.startswith("digits running: 50/200 trials | complete 40 pruned 8 failed 2")
    # executing now vs claimed ahead in a worker's batch: not "running 6"
    assert "running 2 (+4 claimed)" in line
    assert "30.0 trials/min" in line and "elapsed 2 min 05 s" in line
    assert "ETA 5 min 00 s" in line and "best val_accuracy 0.9812 (trial 17)" in line
    assert "\n" not in line


def test_a_progress_line_warns_of_a_stall_or_a_missing_controller() -> None:
    assert "no controller holds this sweep" in progress_line(_snap(controller=None))
    stalled = progress_line(_snap(state="stalled", stalled="w0: setup() failed: OSError: x"))
    assert "STALLED: workers cannot start: w0: setup() failed: OSError: x" in stalled


def test_the_summary_of_a_finished_sweep_uses_its_own_duration_and_rate() -> None:
    failures = ({"kind": "ValueError", "count": 2, "line": "ValueError: bad (t.py:3)"},)
    lines = summary_lines(_snap(state="finished", finished_reason="run_cap", elapsed=60.0,
                                counts={"complete": 150, "pruned": 40, "failed": 10},
                                failures=failures))
    assert lines[0] == ("sweep digits finished (run_cap) in 1 min 00 s: 150 complete, "
                        "40 pruned, 10 failed (200.0 trials/min)")
    assert lines[1] == "best val_accuracy (maximize) 0.9812: trial 17"
    assert lines[2] == "  2 failed: ValueError: bad (t.py:3)"
