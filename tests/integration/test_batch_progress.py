"""Progress where there is no terminal (an sbatch log, a pipe): plain lines every few
seconds, a closing summary, `monitor --once`, and a finished sweep's own rate and duration."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.helpers import cli_env, hq, write_sweep

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

SLOW = """
import time

def objective(trial, state):
    time.sleep(0.2)
    return trial.params["x"] ** 2
"""


def test_run_logs_plain_progress_and_monitor_reads_the_finished_sweep(
        redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "slow.py").write_text(SLOW)
    spec = write_sweep(tmp_path, {
        "name": "plain", "method": "random", "run_cap": 24, "worker": "slow.py",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"min": -1.0, "max": 1.0}},
    })
    env = cli_env(redis_url, tmp_path)
    result = hq(["run", str(spec), "--workers", "2", "--progress-every", "1"], env)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("plain running:")]
    assert len(lines) >= 2, result.stderr  # 24 trials of 0.2 s on 2 workers: about 3 s
    assert all("trials/min" in line and "elapsed" in line for line in lines)
    # what runs now, never more than the workers (claimed-ahead trials are said apart)
    running = [int(m.group(1)) for m in map(re.compile(r"\| running (\d+)").search, lines) if m]
    assert running and max(running) <= 2, lines
    assert re.search(r"finished \(run_cap\) in \d+ s: 24 complete", result.stderr)

    once = hq(["monitor", "--sweep", "plain", "--once"], env)
    assert once.returncode == 0, once.stderr
    assert once.stdout.startswith("plain finished: 24/24 trials | complete 24")
    elapsed = re.search(r"elapsed (\d+) s", once.stdout)
    assert elapsed and int(elapsed.group(1)) >= 2, once.stdout  # its own duration, not 0
    rate = re.search(r"\| ([\d.]+) trials/min", once.stdout)
    assert rate and float(rate.group(1)) > 0, once.stdout
    followed = hq(["monitor", "--sweep", "plain"], env)  # not a terminal: the summary
    assert followed.returncode == 0, followed.stderr
    assert re.search(r"sweep plain finished \(run_cap\) in \d+ s: 24 complete",
                     followed.stderr), followed.stderr
