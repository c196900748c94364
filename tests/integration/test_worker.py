"""A worker process on its own: signals that arrive while it is still starting up."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hq_sweep import exitcodes
from hq_sweep.queue.client import connect
from hq_sweep.queue.sweep import SweepQueue
from tests.integration.helpers import (
    cli_env,
    hq,
    poll,
    start_detached_controller,
    write_sweep,
)

pytestmark = pytest.mark.integration
SLOW = str(Path(__file__).parent.parent / "workers" / "slow_setup.py")


@pytest.mark.parametrize("sig, code", [(signal.SIGUSR1, exitcodes.WALLTIME),
                                       (signal.SIGTERM, exitcodes.DRAINED)])
@pytest.mark.timeout(60)
def test_signal_during_setup_stops_the_worker_before_any_trial(
    redis_url: str, tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    spec = write_sweep(tmp_path, {"name": "early", "method": "random", "run_cap": 5,
                                  "worker": SLOW, "parameters": {"x": {"min": 0.0, "max": 1.0}}})
    env = cli_env(redis_url, tmp_path, HQ_SWEEP_TEST_DIR=str(tmp_path))
    controller = start_detached_controller(spec, "early", env)
    worker = subprocess.Popen([sys.executable, "-m", "hq_sweep", "worker", "--sweep", "early"],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        poll(lambda: (tmp_path / "in-setup").exists(), 30, "the worker to reach setup()")
        worker.send_signal(sig)
        (tmp_path / "go").write_text("")
        assert worker.wait(30) == code
    finally:
        if worker.poll() is None:
            worker.kill()
        os.kill(controller, signal.SIGKILL)
    queue = SweepQueue(connect(redis_url), "early")
    counts = queue.meta.counts()
    assert counts.get("running", 0) == 0 and counts.get("complete", 0) == 0


TOY = str(Path(__file__).parent.parent / "workers" / "toy.py")


@pytest.mark.timeout(90)
def test_count_stops_each_worker_after_that_many_trials(redis_url: str, tmp_path: Path) -> None:
    """`--count N`, like `wandb agent --count N`: a worker leaves for good after N trials, and
    start-workers does not replace it; the trials it claimed beyond N go back to the queue."""
    spec = write_sweep(tmp_path, {"name": "counted", "method": "random", "run_cap": 20,
                                  "worker": TOY, "parameters": {"x": {"min": 0.0, "max": 1.0}}})
    env = cli_env(redis_url, tmp_path)
    controller = start_detached_controller(spec, "counted", env)
    try:
        solo = hq(["worker", "--sweep", "counted", "--count", "3"], env)
        assert solo.returncode == exitcodes.COUNTED, solo.stderr
        queue = SweepQueue(connect(redis_url), "counted")
        assert queue.meta.counts().get("complete", 0) == 3
        launched = hq(["start-workers", "--launcher", "local", "--workers", "2", "--sweep",
                       "counted", "--count", "4"], env)
        assert launched.returncode == 0, launched.stderr
        assert "ran its --count trials, ran its --count trials" in launched.stderr
        counts = queue.meta.counts()
        assert counts.get("complete", 0) == 3 + 2 * 4 and counts.get("running", 0) == 0
    finally:
        os.kill(controller, signal.SIGKILL)
