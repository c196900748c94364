"""End to end: real server, real controller and worker processes, the real CLI."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from hq_sweep.queue.client import connect
from hq_sweep.queue.lock_token import holds
from hq_sweep.queue.sweep import SweepQueue
from tests.integration.helpers import (
    cli_env,
    finished_rows,
    hq,
    poll,
    process_gone,
    write_sweep,
)

pytestmark = pytest.mark.integration
TOY = str(Path(__file__).parent.parent / "workers" / "toy.py")


@pytest.mark.timeout(120)
def test_grid_runs_every_combination_exactly_once(redis_url: str, tmp_path: Path) -> None:
    spec = write_sweep(tmp_path, {
        "name": "grid", "method": "grid", "metric": {"name": "score", "goal": "maximize"},
        "worker": {"module": TOY, "objective": "grid"},
        "parameters": {"a": {"values": [1, 2, 3]}, "b": {"values": [0.1, 0.2, 0.3, 0.4]}},
    })
    result = hq(["run", str(spec), "--workers", "2", "--json"], cli_env(redis_url, tmp_path))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["trials"] == {"complete": 12, "pruned": 0, "failed": 0}
    assert summary["best"]["params"] == {"a": 3, "b": 0.4}
    rows = finished_rows(redis_url, summary["sweep"])
    combos = sorted((r["params"]["a"], r["params"]["b"]) for r in rows)
    assert combos == sorted(itertools.product([1, 2, 3], [0.1, 0.2, 0.3, 0.4]))
    assert all(r["state"] == "complete" and r["attempt"] == 1 for r in rows)
    assert rows[0]["intermediate_values"] == {0: rows[0]["values"][0], 1: rows[0]["values"][0] + 1,
                                              2: rows[0]["values"][0] + 2}


@pytest.mark.timeout(120)
def test_random_sweep_stops_at_run_cap_and_results_stay_readable(
    redis_url: str, tmp_path: Path
) -> None:
    spec = write_sweep(tmp_path, {
        "name": "capped", "method": "random", "run_cap": 300, "worker": TOY,
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"min": 0.0, "max": 6.0}, "y": {"values": [0, 1]}},
    })
    env = cli_env(redis_url, tmp_path)
    result = hq(["run", str(spec), "--workers", "2", "--json"], env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["trials"]["complete"] == 300
    rows = finished_rows(redis_url, summary["sweep"])
    assert [r["number"] for r in rows] == list(range(300))
    best = min(rows, key=lambda r: r["values"][0])
    assert summary["best"]["number"] == best["number"]
    status = json.loads(hq(["status", "--json", "--sweep", summary["sweep"]], env).stdout)
    assert status["trials"]["complete"] == 300 and status["state"] == "finished"
    assert json.loads(hq(["best", "--json"], env).stdout) == summary["best"]


@pytest.mark.timeout(120)
def test_raising_and_nan_objectives_fail_only_their_trials(redis_url: str, tmp_path: Path) -> None:
    spec = write_sweep(tmp_path, {
        "name": "misbehave", "method": "grid", "worker": {"module": TOY, "objective": "misbehave"},
        "parameters": {"kind": {"values": ["ok", "raise", "nan"]}, "x": {"values": [1, 2]}},
    })
    result = hq(["run", str(spec), "--workers", "2", "--json"], cli_env(redis_url, tmp_path))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["trials"] == {"complete": 2, "pruned": 0, "failed": 4}
    rows = finished_rows(redis_url, summary["sweep"])
    reasons = {r["params"]["kind"]: r["reason"] for r in rows if r["state"] == "failed"}
    assert "ValueError: bad trial" in reasons["raise"]
    assert "nan" in reasons["nan"]


@pytest.mark.timeout(120)
def test_a_pruned_trial_whose_last_report_was_nan_ends_pruned(
        redis_url: str, tmp_path: Path) -> None:
    spec = write_sweep(tmp_path, {
        "name": "nanpruned", "method": "grid", "metric": {"name": "loss", "goal": "minimize"},
        "worker": {"module": TOY, "objective": "nan_then_pruned"},
        "parameters": {"x": {"values": [1, 2]}},
    })
    result = hq(["run", str(spec), "--workers", "1", "--json"], cli_env(redis_url, tmp_path))
    assert result.returncode == 4, result.stderr  # ended with no complete trial
    summary = json.loads(result.stdout)
    assert summary["trials"] == {"complete": 0, "pruned": 2, "failed": 0}
    rows = finished_rows(redis_url, summary["sweep"])
    assert [r["values"] for r in rows] == [[1.0], [1.0]]  # the last finite value


@pytest.mark.timeout(120)
def test_metrics_json_cannot_hold_cost_the_trial_nothing(redis_url: str, tmp_path: Path) -> None:
    spec = write_sweep(tmp_path, {
        "name": "extras", "method": "grid", "metric": {"name": "loss", "goal": "minimize"},
        "worker": {"module": TOY, "objective": "odd_extras"},
        "parameters": {"x": {"values": [1, 2]}},
    })
    result = hq(["run", str(spec), "--workers", "1", "--json"], cli_env(redis_url, tmp_path))
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["trials"] == {"complete": 2, "pruned": 0, "failed": 0}
    rows = finished_rows(redis_url, summary["sweep"])
    metrics = rows[0]["metrics"]
    assert metrics["grad_norm"] is None and metrics["lr"] is None
    assert metrics["shape"].startswith("<object object")


@pytest.mark.timeout(180)
def test_controller_killed_mid_sweep_resumes_without_loss_or_repeat(
    redis_url: str, tmp_path: Path
) -> None:
    spec = write_sweep(tmp_path, {
        "name": "restart", "method": "random", "run_cap": 120, "worker": TOY,
        "parameters": {"x": {"min": 0.0, "max": 6.0}},
    })
    env = cli_env(redis_url, tmp_path, HQ_SWEEP_TEST_PAUSE="0.02")
    args = ["enqueue", str(spec), "--sweep", "restart", "--lock-lease", "1"]
    log = (tmp_path / "processes.log").open("wb")
    controller = subprocess.Popen([sys.executable, "-m", "hq_sweep", *args], env=env,
                                  stdout=log, stderr=log)
    workers = subprocess.Popen([sys.executable, "-m", "hq_sweep", "start-workers", "--workers",
                                "2", "--sweep", "restart"], env=env, stdout=log, stderr=log)
    try:
        queue = SweepQueue(connect(redis_url), "restart")
        poll(lambda: queue.meta.counts().get("complete", 0) >= 30, 60,
             "30 trials", lambda: (tmp_path / "processes.log").read_text())
        controller.send_signal(signal.SIGKILL)
        controller.wait(10)
        resumed = hq(args, env, timeout=120)
        assert resumed.returncode == 0, resumed.stderr
        assert workers.wait(30) == 0
    finally:
        for process in (controller, workers):
            if process.poll() is None:
                process.kill()
        log.close()
    rows = finished_rows(redis_url, "restart")
    assert [r["number"] for r in rows] == list(range(120))
    assert all(r["state"] == "complete" for r in rows)
    assert queue.meta.counts().get("complete") == 120
    assert queue.meta.state() == "finished"


@pytest.mark.timeout(120)
def test_sigterm_to_run_stops_its_workers_and_says_how_to_resume(
    redis_url: str, tmp_path: Path
) -> None:
    spec = write_sweep(tmp_path, {
        "name": "term", "method": "random", "run_cap": 1000, "worker": TOY,
        "parameters": {"x": {"min": 0.0, "max": 6.0}},
    })
    env = cli_env(redis_url, tmp_path, HQ_SWEEP_TEST_PAUSE="0.05")
    run = subprocess.Popen([sys.executable, "-m", "hq_sweep", "run", str(spec), "--workers", "2",
                            "--json"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    queue = SweepQueue(connect(redis_url), "term")
    try:
        poll(lambda: queue.meta.counts().get("complete", 0) >= 10, 60, "10 trials")
        pids = [int(info["pid"]) for info in queue.workers.all().values()]
        assert len(pids) == 2
        run.send_signal(signal.SIGTERM)
        _, stderr = run.communicate(timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 130
    assert "hq-sweep run" in stderr and "--sweep term" in stderr  # how to resume it
    assert "Traceback" not in stderr
    poll(lambda: all(process_gone(pid) for pid in pids), 10, "workers to exit")


@pytest.mark.timeout(120)
def test_priors_run_first_and_target_stops_the_sweep(redis_url: str, tmp_path: Path) -> None:
    spec = write_sweep(tmp_path, {
        "name": "target", "method": "random", "run_cap": 500, "worker": TOY,
        "metric": {"name": "loss", "goal": "minimize", "target": 0.5},
        "priors": [{"x": 5.0}, {"x": 3.0}],
        "parameters": {"x": {"min": 0.0, "max": 6.0}},
    })
    env = cli_env(redis_url, tmp_path, HQ_SWEEP_TEST_PAUSE="0.01")
    result = hq(["run", str(spec), "--workers", "2", "--json"], env)
    assert result.returncode == 0, result.stderr
    status = json.loads(hq(["status", "--json", "--sweep", "target"], env).stdout)
    assert status["finished_reason"] == "target 0.5 reached"
    rows = finished_rows(redis_url, "target")
    assert [r["params"]["x"] for r in rows[:2]] == [5.0, 3.0]
    assert rows[1]["values"] == [0.0]
    finished = sum(status["trials"][s] for s in ("complete", "pruned", "failed"))
    assert finished + status["trials"]["cancelled"] == len(rows) < 500
    assert status["trials"]["queued"] == status["trials"]["running"] == 0


@pytest.mark.timeout(180)
def test_detached_controller_and_standby_takeover(redis_url: str, tmp_path: Path) -> None:
    spec = write_sweep(tmp_path, {
        "name": "standby", "method": "random", "run_cap": 150, "worker": TOY,
        "parameters": {"x": {"min": 0.0, "max": 6.0}},
    })
    env = cli_env(redis_url, tmp_path, HQ_SWEEP_TEST_PAUSE="0.02")
    started = hq(["enqueue", str(spec), "--detach", "--lock-lease", "1"], env)
    assert started.returncode == 0, started.stderr
    found = re.search(r"pid (\d+)", started.stderr)
    assert found is not None, started.stderr
    detached_pid = int(found.group(1))
    queue = SweepQueue(connect(redis_url), "standby")
    assert holds(queue.lock.holder(), detached_pid)  # enqueue returns once it holds the sweep
    log = (tmp_path / "standby.log").open("wb")
    standby = subprocess.Popen([sys.executable, "-m", "hq_sweep", "controller", "standby",
                                "--lock-lease", "1"], env=env, stdout=log, stderr=log)
    workers = subprocess.Popen([sys.executable, "-m", "hq_sweep", "start-workers", "--workers",
                                "2", "--sweep", "standby"], env=env, stdout=log, stderr=log)
    queue = SweepQueue(connect(redis_url), "standby")
    try:
        poll(lambda: queue.meta.counts().get("complete", 0) >= 20, 60, "20 trials",
             lambda: (tmp_path / "standby.log").read_text())
        os.kill(detached_pid, signal.SIGKILL)
        assert standby.wait(120) == 0
        assert workers.wait(30) == 0
    finally:
        for process in (standby, workers):
            if process.poll() is None:
                process.kill()
        log.close()
    assert "standing by" in (tmp_path / "standby.log").read_text()
    rows = finished_rows(redis_url, "standby")
    assert [r["number"] for r in rows] == list(range(150))
    assert all(r["state"] == "complete" for r in rows)


@pytest.mark.timeout(60)
def test_a_second_detached_controller_says_it_stands_by(redis_url: str, tmp_path: Path) -> None:
    spec = write_sweep(tmp_path, {
        "name": "twice", "method": "random", "run_cap": 5, "worker": TOY,
        "parameters": {"x": {"min": 0.0, "max": 1.0}},
    })
    env = cli_env(redis_url, tmp_path)
    pids = []
    try:
        for expected in ("controller running in the background", "stands by"):
            started = hq(["enqueue", str(spec), "--sweep", "twice", "--detach",
                          "--lock-lease", "1"], env)
            assert started.returncode == 0 and expected in started.stderr, started.stderr
            pids.append(int(re.findall(r"pid (\d+)", started.stderr)[-1]))
        assert holds(SweepQueue(connect(redis_url), "twice").lock.holder(), pids[0])
        status = json.loads(hq(["status", "--json", "--sweep", "twice"], env).stdout)
        assert status["controller"] == f"{socket.gethostname()} pid {pids[0]}"
    finally:
        for pid in reversed(pids):  # the standby first, so it cannot take over
            os.kill(pid, signal.SIGKILL)
    poll(lambda: json.loads(hq(["status", "--json", "-s", "twice"], env).stdout)["controller"]
         is None, 10, "the killed controller's lock to lapse")
    assert "no controller holds this sweep" in hq(["status", "-s", "twice"], env).stderr


@pytest.mark.timeout(120)
def test_a_trial_pruned_at_a_step_trains_no_further(redis_url: str, tmp_path: Path) -> None:
    """With steps long enough to afford it, the worker waits for the decision on the step it
    reports, so a pruned trial stops at that step instead of training one more."""
    spec = write_sweep(tmp_path, {
        "name": "on-time", "method": "grid", "metric": {"name": "loss"},
        "worker": {"module": TOY, "objective": "slow_steps"},
        "pruner": {"name": "threshold", "options": {"upper": 1.5}},
        "parameters": {"x": {"values": [0.5, 1.0, 2.0]}},
    })
    result = hq(["run", str(spec), "--workers", "1", "--json"], cli_env(redis_url, tmp_path))
    assert result.returncode == 0, result.stderr
    rows = {r["params"]["x"]: r for r in finished_rows(redis_url, "on-time")}
    # x * step first exceeds 1.5 at step 2 for x=1 and at step 1 for x=2; x=0.5 never does.
    assert {x: (r["state"], sorted(r["intermediate_values"])) for x, r in rows.items()} == {
        0.5: ("complete", [0, 1, 2, 3]), 1.0: ("pruned", [0, 1, 2]), 2.0: ("pruned", [0, 1])}
    log = " ".join((tmp_path / "state" / "logs" / "on-time" / "worker-0.log").read_text().split())
    assert re.search(r"\d+ reports waited for their prune decision, \d+ answered in time", log)
