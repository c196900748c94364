"""Against a real Slurm (22.05 on this machine: /work/shared/slurm/start-local-slurm.sh with
SLURM_LOCAL_NODES=2 SLURM_LOCAL_GPUS=2): start-workers inside salloc/sbatch places one warm
worker per (node, GPU) as srun steps, and walltime ends lose no trial.

Skips, with the reason, where `sinfo` is missing or fewer than two idle nodes with two GPUs
each are there. The Redis server binds 127.0.0.1: fine, the emulated nodes are this machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hq_sweep.env import gpu_count
from tests.integration.helpers import cli_env, finished_rows, hq, poll, write_sweep

# One Slurm cluster for the whole run: its tests go to one xdist worker, in turn.
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("slurm")]
TOY = str(Path(__file__).parent.parent / "workers" / "toy.py")
WORKER_NAME = re.compile(r"^(?P<node>.+)-gpu(?P<gpu>[\d,]+)-r\d+-\d+$")
HQ_SWEEP = [sys.executable, "-m", "hq_sweep"]


def _idle_gpu_nodes() -> int:
    done = subprocess.run(["sinfo", "-h", "-N", "-t", "idle", "-o", "%N %G"],
                          capture_output=True, text=True, timeout=20, check=False)
    nodes = {line.split()[0] for line in done.stdout.splitlines()
             if len(line.split()) == 2 and gpu_count(line.split()[1]) >= 2}
    return len(nodes)


@pytest.fixture
def slurm(tmp_path: Path) -> Iterator[str]:
    """A job name unique to the test; its jobs are cancelled afterwards, whatever happened."""
    if shutil.which("sinfo") is None:
        pytest.skip("no Slurm here (sinfo not found); see /work/shared/slurm/README.md")
    # The previous test's jobs may still be completing: their nodes come back within seconds.
    deadline = time.monotonic() + 60
    while True:
        try:
            idle = _idle_gpu_nodes()
        except (OSError, subprocess.SubprocessError) as exc:
            pytest.skip(f"Slurm does not answer: {exc}")
        if idle >= 2:
            break
        if time.monotonic() > deadline:
            pytest.skip(f"needs 2 idle nodes with 2 GPUs each, Slurm has {idle}")
        time.sleep(0.5)
    name = f"hqsweep-{tmp_path.name}"
    yield name
    subprocess.run(["scancel", "-n", name], capture_output=True, timeout=20, check=False)


def _grid(tmp_path: Path, name: str, trials: int) -> Path:
    return write_sweep(tmp_path, {"name": name, "method": "grid", "worker": TOY,
                                  "parameters": {"x": {"values": list(range(trials))}}})


def _controller(spec: Path, name: str, env: dict[str, str], tmp_path: Path) -> Any:
    log = (tmp_path / "controller.log").open("wb")
    return subprocess.Popen([*HQ_SWEEP, "enqueue", str(spec), "--sweep", name], env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def _exactly_once(redis_url: str, name: str, trials: int) -> list[dict[str, Any]]:
    rows = finished_rows(redis_url, name)
    assert sorted(r["number"] for r in rows) == list(range(trials))
    assert all(r["state"] == "complete" for r in rows), [r for r in rows if
                                                         r["state"] != "complete"][:3]
    assert sorted(r["params"]["x"] for r in rows) == list(range(trials))
    return rows


def _complete(redis_url: str, name: str) -> int:
    """Trials done (trial_rows also lists those queued or running)."""
    return sum(r["state"] == "complete" for r in finished_rows(redis_url, name))


def _ended(output: str) -> list[str]:
    """How start-workers said its workers ended (rich wraps long lines: join them first)."""
    text = " ".join(output.split())
    match = re.search(r"workers ended: (.*?)(?: salloc:|$)", text)
    assert match is not None, output[-3000:]
    return re.findall(r"[^,(]+(?:\([^)]*\))?", match.group(1).replace(", ", ","))


def _finish_locally(env: dict[str, str], name: str, controller: Any, workers: int = 8) -> None:
    """What a user does after the job: run the rest anywhere (here, on local workers)."""
    rest = hq(["start-workers", "--launcher", "local", "--workers", str(workers), "--sweep", name],
              env,
              timeout=150)
    assert rest.returncode == 0, rest.stderr[-3000:]
    assert controller.wait(30) == 0


@pytest.mark.timeout(150)
def test_salloc_two_nodes_two_gpus_runs_four_workers_one_per_gpu(
    redis_url: str, tmp_path: Path, slurm: str
) -> None:
    trials = 60
    env = cli_env(redis_url, tmp_path, HQ_SWEEP_TEST_PAUSE="0.2")
    controller = _controller(_grid(tmp_path, "gpus", trials), "gpus", env, tmp_path)
    try:
        job = subprocess.run(
            ["salloc", "-I60", "-J", slurm, "-N2", "--gres=gpu:2", "-t", "5",
             *HQ_SWEEP, "start-workers", "--sweep", "gpus"],
            env=env, capture_output=True, text=True, timeout=120)
        assert job.returncode == 0, job.stderr[-3000:]
        assert controller.wait(30) == 0
    finally:
        controller.kill()
    assert "started 4 workers as Slurm steps" in job.stderr, job.stderr[-3000:]
    rows = _exactly_once(redis_url, "gpus", trials)
    assert all(r["attempt"] == 1 for r in rows)
    workers = {r["worker"] for r in rows}
    places = {(m["node"], m["gpu"]) for m in map(WORKER_NAME.match, workers) if m}
    assert len(workers) == 4 and len(places) == 4, workers  # a distinct (node, GPU) each
    assert {node for node, _ in places} == {"n1", "n2"}
    assert all("," not in gpu for _, gpu in places)  # each step sees one GPU only


def _children(pid: int) -> list[int]:
    return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


@pytest.mark.timeout(150)
def test_sigterm_to_start_workers_drains_the_steps_and_loses_nothing(
    redis_url: str, tmp_path: Path, slurm: str
) -> None:
    """scancel/Ctrl-C reach start-workers: workers finish their trial (exit 10), not killed."""
    trials = 120
    env = cli_env(redis_url, tmp_path, HQ_SWEEP_TEST_PAUSE="0.5")
    controller = _controller(_grid(tmp_path, "term", trials), "term", env, tmp_path)
    out = tmp_path / "salloc.log"
    with out.open("wb") as log:
        job = subprocess.Popen(
            ["salloc", "-I60", "-J", slurm, "-N2", "--gres=gpu:2", "-t", "5",
             *HQ_SWEEP, "start-workers", "--sweep", "term"],
            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        # All four must be past their start-up: a worker still importing dies of SIGTERM.
        poll(lambda: len({r["worker"] for r in finished_rows(redis_url, "term")
                          if r["state"] == "complete"}) == 4, 60,
             "a trial done on each worker", out.read_text)
        (start_workers,) = _children(job.pid)
        os.kill(start_workers, signal.SIGTERM)
        assert job.wait(60) == 0, out.read_text()[-3000:]
        assert _ended(out.read_text()) == ["drained after SIGTERM"] * 4
        assert 0 < _complete(redis_url, "term") < trials, out.read_text()[-3000:]
        _finish_locally(env, "term", controller)
    finally:
        job.kill()
        controller.kill()
    _exactly_once(redis_url, "term", trials)


@pytest.mark.timeout(150)
def test_walltime_guard_stops_claiming_before_the_end_and_loses_nothing(
    redis_url: str, tmp_path: Path, slurm: str
) -> None:
    """A 2-minute job with a 100 s margin: workers stop claiming ~20 s in (exit 12)."""
    trials = 200
    env = cli_env(redis_url, tmp_path, HQ_SWEEP_TEST_PAUSE="0.5",
                  HQ_SWEEP_WALLTIME_MARGIN_S="100")
    controller = _controller(_grid(tmp_path, "wall", trials), "wall", env, tmp_path)
    try:
        job = subprocess.run(
            ["salloc", "-I60", "-J", slurm, "-N2", "--gres=gpu:2", "-t", "2",
             *HQ_SWEEP, "start-workers", "--sweep", "wall"],
            env=env, capture_output=True, text=True, timeout=120)
        assert job.returncode == 0, job.stderr[-3000:]
        assert _ended(job.stderr) == ["drained after SIGUSR1 (walltime warning)"] * 4
        assert 0 < _complete(redis_url, "wall") < trials
        _finish_locally(env, "wall", controller)
    finally:
        controller.kill()
    _exactly_once(redis_url, "wall", trials)


def _jobs_named(name: str) -> list[str]:
    done = subprocess.run(["squeue", "-h", "-n", name, "-o", "%i %T"], capture_output=True,
                          text=True, timeout=20, check=False)
    return done.stdout.split("\n") if done.stdout.strip() else []


@pytest.mark.timeout(330)
def test_chained_sbatch_allocations_finish_a_sweep_too_long_for_one(
    tmp_path: Path, slurm: str
) -> None:
    """The rendered script, as users submit it: 2-minute links, USR1 60 s before the end,
    --chain 4. Link 1 drains on the warning; the next links resume the same sweep from the
    server's data in the state dir until it is finished (two or three links: Slurm sends the
    warning 60-90 s before the end), and the link queued after that is cancelled."""
    trials = 160  # 2 s each on 4 workers: 80 s, more than one link's 30-60 s before USR1
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if k != "HQ_SWEEP_REDIS_URL"}
    env.update(HQ_SWEEP_STATE_DIR=str(state), HQ_SWEEP_TEST_PAUSE="2")
    script = tmp_path / "chain.sbatch"
    rendered = hq(["sbatch", str(_grid(tmp_path, slurm, trials)), "--nodes", "2",
                   "--gpus-per-node", "2", "--time", "2", "--signal-seconds", "60",
                   "--chain", "4", "--state-dir", str(state), "--sweep", slurm,
                   "--output", str(script)], env)
    assert rendered.returncode == 0, rendered.stderr
    submitted = subprocess.run(["sbatch", "--parsable", str(script)], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=30)
    assert submitted.returncode == 0, submitted.stderr
    def logs() -> str:
        return "\n".join(path.read_text() for path in sorted(tmp_path.glob("hq-sweep-*.out")))

    poll(lambda: len(list(tmp_path.glob("hq-sweep-*.out"))) >= 2 and not _jobs_named(slurm),
         280, "two or three chain links to run and none to be left", logs)
    # Every link stopped its server on the way out: the data in the state dir is the record.
    assert hq(["server", "start", "--state-dir", str(state)], env).returncode == 0
    try:
        status = json.loads(hq(["status", "--sweep", slurm, "--json"], env).stdout)
        rows = json.loads(hq(["export", "--sweep", slurm, "--format", "json"], env).stdout)
    finally:
        hq(["server", "stop", "--state-dir", str(state)], env)
    text = logs()
    assert "chain link 1/4; next link:" in text and "chain link 2/4; next link:" in text, text
    assert "USR1: workers finish their trials" in text, text[-3000:]
    assert "sweep finished; cancelling next link" in text, text[-3000:]
    assert status["state"] == "finished", status
    assert sorted(r["number"] for r in rows) == list(range(trials))
    assert all(r["state"] == "complete" for r in rows)
    assert sorted(r["params"]["x"] for r in rows) == list(range(trials))
