"""What each trial cost, end to end: peak RSS per trial in a warm worker and in command mode,
the totals in `status`, and (on the fake-GPU Slurm) each trial's GPU and GPU-hours."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.helpers import cli_env, hq, write_sweep
from tests.integration.test_slurm import HQ_SWEEP, TOY, slurm  # noqa: F401 (a fixture)

pytestmark = pytest.mark.integration
ALLOCATE = """
import time
def objective(trial, state):
    big = trial.params["i"] % 2
    if big:
        block = bytearray(100 * 2**20)  # zero-filled: every page resident
        time.sleep(0.01)
        del block
    return float(big)
"""
ALLOCATE_PROGRAM = """
import json, os, sys, time
params = json.loads(os.environ["HQ_SWEEP_PARAMS_JSON"])
big = params["i"] % 2
block = bytearray(100 * 2**20 if big else 0)
time.sleep(0.3)  # long enough for the worker to see the program's own VmHWM
print("@hq-sweep " + json.dumps({"score": float(big)}), flush=True)
"""


def _export(env: dict[str, str], sweep: str) -> list[dict[str, Any]]:
    done = hq(["export", "--sweep", sweep, "--format", "json"], env)
    assert done.returncode == 0, done.stderr
    rows: list[dict[str, Any]] = json.loads(done.stdout)
    return rows


def _check_rss(rows: list[dict[str, Any]]) -> None:
    big = [r["rss_peak_mb"] for r in rows if r["params"]["i"] % 2]
    small = [r["rss_peak_mb"] for r in rows if not r["params"]["i"] % 2]
    assert len(big) == 3 and len(small) == 3, rows
    assert min(big) - max(small) > 80, (big, small)
    assert all(r["node"] and r["gpus"] == 0 and r["gpu_hours"] == 0 for r in rows)
    assert all(r["gpu_mem_peak_mb"] is None for r in rows)  # no NVML here: left out


def _grid(tmp_path: Path, name: str, **entry: str) -> Path:
    return write_sweep(tmp_path, {
        "name": name, "method": "grid", "metric": {"name": "score", "goal": "maximize"},
        "parameters": {"i": {"values": list(range(6))}}, **entry})


@pytest.mark.timeout(120)
def test_warm_worker_records_each_trials_peak_rss_and_status_totals(
        redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "alloc.py").write_text(ALLOCATE)
    env = cli_env(redis_url, tmp_path)
    ran = hq(["run", str(_grid(tmp_path, "rss", worker=str(tmp_path / "alloc.py"))),
              "--workers", "1"], env)
    assert ran.returncode == 0, ran.stderr
    _check_rss(_export(env, "rss"))
    status = hq(["status", "--sweep", "rss", "--json"], env)
    cost = json.loads(status.stdout)["cost"]
    assert cost["trial_hours"] > 0 and cost["gpu_hours"] == 0 and cost["rss_peak_mb"] > 100
    text = hq(["status", "--sweep", "rss"], env).stdout
    assert "cost: " in text and "trial-h, peak RSS" in text, text


@pytest.mark.timeout(120)
def test_command_mode_records_the_programs_own_peak_rss(redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "alloc_prog.py").write_text(ALLOCATE_PROGRAM)
    env = cli_env(redis_url, tmp_path)
    ran = hq(["run", str(_grid(tmp_path, "crss", program=str(tmp_path / "alloc_prog.py"))),
              "--workers", "1"], env)
    assert ran.returncode == 0, ran.stderr
    _check_rss(_export(env, "crss"))


@pytest.mark.xdist_group("slurm")
@pytest.mark.timeout(150)
def test_slurm_trials_record_their_gpu_and_gpu_hours(
        redis_url: str, tmp_path: Path, slurm: str) -> None:  # noqa: F811
    trials = 12
    spec = write_sweep(tmp_path, {"name": "gpuh", "method": "grid", "worker": TOY,
                                  "parameters": {"x": {"values": list(range(trials))}}})
    env = cli_env(redis_url, tmp_path, HQ_SWEEP_TEST_PAUSE="0.2")
    controller = subprocess.Popen([*HQ_SWEEP, "enqueue", str(spec), "--sweep", "gpuh"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        job = subprocess.run(["salloc", "-I60", "-J", slurm, "-N2", "--gres=gpu:2", "-t", "5",
                              *HQ_SWEEP, "start-workers", "--sweep", "gpuh"],
                             env=env, capture_output=True, text=True, timeout=120)
        assert job.returncode == 0, job.stderr[-3000:]
        assert controller.wait(30) == 0
    finally:
        controller.kill()
    rows = _export(env, "gpuh")
    assert len(rows) == trials and all(r["state"] == "complete" for r in rows)
    assert {r["node"] for r in rows} == {"n1", "n2"}, rows
    assert all(r["gpus"] == 1 and r["gpu"] and "," not in r["gpu"] for r in rows), rows
    for row in rows:
        assert row["gpu_hours"] == pytest.approx(row["duration"] / 3600, rel=1e-3)
        assert row["worker"].startswith(f"{row['node']}-gpu{row['gpu']}-")
    status = json.loads(hq(["status", "--sweep", "gpuh", "--json"], env).stdout)["cost"]
    assert status["gpu_hours"] == pytest.approx(sum(r["gpu_hours"] for r in rows), rel=1e-3)
    assert sys.executable  # the workers ran this interpreter (HQ_SWEEP)
