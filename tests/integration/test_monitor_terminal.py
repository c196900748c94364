"""`hq-sweep monitor` on a real terminal, as a person over ssh sees it: tmux runs the monitor
at 80 and 200 columns during a real sweep, and the test reads the screen. Real server, real
worker processes, real signals."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.helpers import cli_env, poll, start_detached_controller, write_sweep

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120),
              pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")]

SLOW = """
import time

def objective(trial, state):
    time.sleep(0.3)
    return (trial.params["x"] - 0.2) ** 2
"""


def _screen(session: str) -> str:
    return subprocess.run(["tmux", "capture-pane", "-p", "-t", session], text=True,
                          capture_output=True, check=False).stdout


def _row(screen: str, pid: int) -> str:
    """The workers table's row of the worker with this pid ("" while not shown)."""
    return next((line for line in screen.splitlines() if f"-{pid} " in line), "")


@pytest.mark.parametrize("columns", [80, 200])
def test_the_monitor_shows_bar_best_and_workers_and_a_killed_one_goes_stale(
        redis_url: str, tmp_path: Path, columns: int) -> None:
    (tmp_path / "slow.py").write_text(SLOW)
    sweep = f"tmux{columns}"
    spec = write_sweep(tmp_path, {
        "name": sweep, "method": "random", "run_cap": 400, "worker": "slow.py",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"min": -1.0, "max": 1.0}}})
    env = cli_env(redis_url, tmp_path)
    controller = start_detached_controller(spec, sweep, env)
    workers = [subprocess.Popen([sys.executable, "-m", "hq_sweep", "worker", "--sweep", sweep],
                                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(2)]
    # The server's URL holds its password: tmux gets it from a private script, not argv.
    script = tmp_path / "monitor.sh"
    script.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items()
                              if k.startswith(("HQ_SWEEP", "PATH", "PYTHON", "HOME")))
                      + f"exec {shlex.quote(sys.executable)} -m hq_sweep monitor --sweep {sweep}\n")
    script.chmod(0o700)
    session = f"hqs-{os.getpid()}-{columns}"
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", str(columns), "-y", "50",
                    str(script)], check=True)
    try:
        poll(lambda: all(_row(_screen(session), w.pid) for w in workers) and
             "best loss" in _screen(session), 60, "the monitor to show both workers and a best",
             lambda: _screen(session))
        screen = _screen(session)
        assert "━" in screen and "/400 trials" in screen and "loss: minimize" in screen
        assert all(len(line) <= columns for line in screen.splitlines())
        killed, drained = workers
        killed.send_signal(signal.SIGKILL)
        poll(lambda: "STALE" in _row(_screen(session), killed.pid), 20,
             "the killed worker to show as stale (within the 20 s lease)", lambda: _screen(session))
        drained.send_signal(signal.SIGTERM)  # finishes its trial, leaves, says why
        poll(lambda: "left: drained" in _row(_screen(session), drained.pid), 30,
             "the drained worker to show it left, and why", lambda: _screen(session))
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.wait(10)
        os.kill(controller, signal.SIGKILL)
