"""A new user's first hour: failures shown where they look, sweep ids that do not surprise,
exit codes as documented. Real server, real `hq-sweep` processes, real worker processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.helpers import cli_env, hq, write_sweep

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

FAILING = """
def objective(trial, state):
    x = trial.params["x"]
    if x < 0.5:
        raise ValueError(f"x too small: {x:.3f}")
    return float("nan")
"""
SETUP_FAILS = """
def setup(ctx):
    return load()

def load():
    raise FileNotFoundError("data/train.npz not found")

def objective(trial, state):
    return 1.0
"""
TOY = """
def objective(trial, state):
    return (trial.params["x"] - 0.3) ** 2
"""


def _sweep(tmp_path: Path, code: str, name: str, run_cap: int = 8) -> Path:
    (tmp_path / f"{name}.py").write_text(code)
    return write_sweep(tmp_path, {
        "name": name, "method": "random", "run_cap": run_cap,
        "metric": {"name": "loss", "goal": "minimize"},
        "worker": {"module": f"{name}.py"}, "parameters": {"x": {"min": 0.0, "max": 1.0}},
    }, name=f"{name}.yaml")


def test_a_sweep_where_every_trial_fails_exits_4_and_says_why(
        redis_url: str, tmp_path: Path) -> None:
    spec = _sweep(tmp_path, FAILING, "failing", run_cap=12)
    env = cli_env(redis_url, tmp_path)
    result = hq(["run", str(spec), "--workers", "2"], env)
    assert result.returncode == 4, result.stderr
    assert "0 complete" in result.stderr and "12 failed" in result.stderr
    # kind, one line with the user's file:line, count: no traceback
    lines = [line.strip() for line in result.stderr.splitlines()]
    small = [line for line in lines if "ValueError: x too small" in line]
    assert len(small) == 1 and small[0].endswith("(failing.py:5)"), lines
    nan = [line for line in lines if "invalid result" in line]
    assert len(nan) == 1 and "is nan" in nan[0], lines
    counts = sorted(int(line.split(" failed")[0]) for line in small + nan)
    assert sum(counts) == 12
    assert "no trial completed" in result.stderr and "Traceback" not in result.stderr
    status = json.loads(hq(["status", "--sweep", "failing", "--json"], env).stdout)
    assert sum(status["failures"].values()) == 12
    assert status["failure_lines"]["ValueError"].startswith("ValueError: x too small")


def test_a_setup_that_raises_shows_its_exception_and_stalls_the_sweep(
        redis_url: str, tmp_path: Path) -> None:
    spec = _sweep(tmp_path, SETUP_FAILS, "nosetup")
    env = cli_env(redis_url, tmp_path)
    result = hq(["run", str(spec), "--workers", "2"], env, timeout=60)
    assert result.returncode == 3, result.stderr
    assert ("setup() failed: FileNotFoundError: data/train.npz not found (nosetup.py:6)"
            in result.stderr), result.stderr
    assert "worker-" in result.stderr and ".log" in result.stderr  # where the traceback is
    assert f"hq-sweep run {spec} --sweep nosetup" in result.stderr  # the way back
    assert "Traceback" not in result.stderr
    status = hq(["status", "--sweep", "nosetup", "--json"], env)
    found = json.loads(status.stdout)
    assert found["state"] == "stalled" and "FileNotFoundError" in found["stalled"]
    text = hq(["status", "--sweep", "nosetup"], env)
    assert "stalled" in text.stdout and "start-workers --sweep nosetup" in text.stderr
    assert "hq-sweep controller" not in text.stdout + text.stderr  # not the wrong fix
    monitor = hq(["monitor", "--sweep", "nosetup"], env, timeout=30)
    assert monitor.returncode == 3 and "data/train.npz not found" in monitor.stderr
    # Fixed, the same sweep resumes and the stall is gone.
    (tmp_path / "nosetup.py").write_text(TOY)
    again = hq(["run", str(spec), "--sweep", "nosetup", "--workers", "2"], env)
    assert again.returncode == 0, again.stderr
    assert "resuming sweep nosetup" in again.stderr
    after = json.loads(hq(["status", "--sweep", "nosetup", "--json"], env).stdout)
    assert after["state"] == "finished" and after["stalled"] is None
    assert after["trials"]["complete"] == 8


def test_import_failure_names_the_missing_module_and_the_line(
        redis_url: str, tmp_path: Path) -> None:
    spec = _sweep(tmp_path, "import numpy\nimport not_a_real_module_xyz\n", "broken")
    result = hq(["run", str(spec), "--workers", "1"], cli_env(redis_url, tmp_path), timeout=60)
    assert result.returncode == 3, result.stderr
    assert ("ModuleNotFoundError: No module named 'not_a_real_module_xyz' (broken.py:2)"
            in result.stderr), result.stderr
    assert "Traceback" not in result.stderr


def test_a_taken_name_is_said_and_the_old_sweep_resumes(redis_url: str, tmp_path: Path) -> None:
    spec = _sweep(tmp_path, TOY, "toy", run_cap=4)
    env = cli_env(redis_url, tmp_path)
    first = hq(["run", str(spec), "--json"], env)
    assert first.returncode == 0, first.stderr
    second = hq(["run", str(spec), "--json"], env)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["sweep"] == "toy-2"
    assert "a sweep named 'toy' exists" in second.stderr and "toy-2" in second.stderr
    assert f"hq-sweep run {spec} --sweep toy" in second.stderr
    # --trials raises the old sweep's run_cap: 4 more trials, numbered on from 4
    more = hq(["run", str(spec), "--sweep", "toy", "--trials", "8", "--json"], env)
    assert more.returncode == 0, more.stderr
    assert "resuming sweep toy (4 trials finished so far)" in more.stderr
    assert json.loads(more.stdout)["trials"]["complete"] == 8
    # --resume takes the newest sweep of that name
    resumed = hq(["run", str(spec), "--resume", "--trials", "6", "--json"], env)
    assert json.loads(resumed.stdout)["sweep"] == "toy-2", resumed.stderr
    assert json.loads(resumed.stdout)["trials"]["complete"] == 6


def test_resuming_with_another_sweep_file_is_refused(redis_url: str, tmp_path: Path) -> None:
    spec = _sweep(tmp_path, TOY, "toy", run_cap=2)
    env = cli_env(redis_url, tmp_path)
    assert hq(["run", str(spec)], env).returncode == 0
    other = write_sweep(tmp_path, {
        "name": "toy", "method": "grid", "metric": {"name": "loss", "goal": "minimize"},
        "worker": {"module": "toy.py"}, "parameters": {"x": {"values": [1, 2]}},
    }, name="other.yaml")
    result = hq(["run", str(other), "--sweep", "toy"], env)
    assert result.returncode == 2
    assert "different sweep file" in result.stderr and "Traceback" not in result.stderr


def test_workers_for_a_finished_sweep_say_so_and_exit_16(
        redis_url: str, tmp_path: Path) -> None:
    spec = _sweep(tmp_path, TOY, "done", run_cap=2)
    env = cli_env(redis_url, tmp_path)
    assert hq(["run", str(spec)], env).returncode == 0
    workers = hq(["start-workers", "--sweep", "done", "--workers", "2"], env, timeout=60)
    assert workers.returncode == 16, workers.stderr
    assert "already finished" in workers.stderr and "enqueue" in workers.stderr
    assert "started 2 workers" not in workers.stderr  # refused before launching anything
    worker = hq(["worker", "--sweep", "done"], env, timeout=60)
    assert worker.returncode == 16 and "already finished" in worker.stderr


def _own_server_env(tmp_path: Path, state: Path) -> dict[str, str]:
    env = cli_env("", tmp_path)
    del env["HQ_SWEEP_REDIS_URL"]  # found through the state dir, as a user's commands do
    env["HQ_SWEEP_STATE_DIR"] = str(state)
    return env


def test_results_read_from_a_state_dir_after_its_server_is_gone(tmp_path: Path) -> None:
    state = tmp_path / "job-state"
    env = _own_server_env(tmp_path, state)
    spec = _sweep(tmp_path, TOY, "after", run_cap=4)
    try:
        assert hq(["run", str(spec)], env).returncode == 0  # starts a server in `state`
    finally:
        assert hq(["server", "stop"], env).returncode == 0  # the job ended
    elsewhere = _own_server_env(tmp_path, tmp_path / "login-node")
    status = hq(["status", "--sweep", "after", "--state-dir", str(state), "--json"], elsewhere)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["trials"]["complete"] == 4
    exported = hq(["export", "--sweep", "after", "--state-dir", str(state), "--format", "json"],
                  elsewhere)
    assert len(json.loads(exported.stdout)) == 4
    assert not (state / "connection.json").exists()  # the server it started is gone again
    missing = hq(["best", "--state-dir", str(tmp_path / "nothing")], elsewhere)
    assert missing.returncode == 2 and "no hq-sweep server data" in missing.stderr


def test_a_batch_sweeps_own_server_is_found_by_its_id(tmp_path: Path) -> None:
    root = tmp_path / "root"
    job = _own_server_env(tmp_path, root / "sweeps" / "batchy")  # what `sbatch` sets
    spec = _sweep(tmp_path, TOY, "batchy", run_cap=3)
    try:
        assert hq(["run", str(spec)], job).returncode == 0
        login = _own_server_env(tmp_path, root)  # the default dir: no server there
        found = hq(["status", "--sweep", "batchy", "--json"], login)
        assert found.returncode == 0, found.stderr
        assert json.loads(found.stdout)["trials"]["complete"] == 3
        assert hq(["status", "--json"], login).returncode == 1  # no id: nothing to look for
    finally:
        hq(["server", "stop"], job)
