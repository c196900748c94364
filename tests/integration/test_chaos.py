"""Chaos: kill workers and controllers, restart Redis, send signals, misbehave in objectives.

Whatever dies, every trial ends exactly once, the controller's study holds each outcome
once, and run_cap is exact. Real processes, a real server, real signals.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pytest

from hq_sweep.queue.client import connect
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.results.summary import trial_rows
from hq_sweep.server.embedded import EmbeddedServer
from tests.integration.helpers import (
    cli_env,
    finished_rows,
    hq,
    poll,
    process_gone,
    write_sweep,
)

pytestmark = pytest.mark.integration
CHAOS = str(Path(__file__).parent.parent / "workers" / "chaos.py")


def chaos_sweep(tmp_path: Path, name: str, run_cap: int, **extra: Any) -> Path:
    return write_sweep(tmp_path, {
        "name": name, "method": "random", "run_cap": run_cap, "lease": 2, "retries": 5,
        "worker": {"module": CHAOS, "objective": "short"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}}, **extra,
    })


class Sweep:
    """A controller (`enqueue`) and workers (`start-workers`) as separate processes."""

    def __init__(self, redis_url: str, tmp_path: Path, spec: Path, name: str, workers: int,
                 pause: str = "0.02") -> None:
        self.env = cli_env(redis_url, tmp_path, HQ_SWEEP_TEST_PAUSE=pause)
        self.spec, self.name, self.tmp_path = spec, name, tmp_path
        self.log_path = tmp_path / "processes.log"
        self.log = self.log_path.open("ab")
        self.queue = SweepQueue(connect(redis_url), name)
        self.controller = self.start_controller()
        self.workers = self.spawn("start-workers", "--workers", str(workers), "--sweep", name)

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "hq_sweep", *args], env=self.env,
                                stdout=self.log, stderr=self.log)

    def start_controller(self) -> subprocess.Popen[bytes]:
        return self.spawn("enqueue", str(self.spec), "--sweep", self.name, "--lock-lease", "1")

    def complete(self) -> int:
        return self.queue.meta.counts().get("complete", 0)

    def wait_for(self, complete: int, timeout: float = 90) -> None:
        poll(lambda: self.complete() >= complete, timeout, f"{complete} complete trials",
             lambda: self.log_path.read_text(errors="replace"))

    def live_worker_pids(self) -> dict[int, int]:
        """rank -> pid of workers that are alive now."""
        found = {int(i["rank"]): int(i["pid"]) for i in self.queue.workers.all().values()}
        return {rank: pid for rank, pid in found.items() if not process_gone(pid)}

    def just_started(self, pid: int, within_s: float = 0.3) -> bool:
        """The worker with this pid began a trial less than `within_s` ago."""
        names = [name for name, info in self.queue.workers.all().items() if int(info["pid"]) == pid]
        leases = cast(list[bytes], self.queue.connection.zrange(f"{self.queue.keys.meta}:leases",
                                                                0, -1))
        running = [int(n) for n in leases]
        return any(r.worker in names and r.started_at is not None
                   and time.time() - r.started_at < within_s
                   for r in self.queue.trials.records_for(running))

    def finish(self, timeout: float = 120) -> None:
        assert self.controller.wait(timeout) == 0, self.log_path.read_text(errors="replace")
        assert self.workers.wait(30) == 0, self.log_path.read_text(errors="replace")

    def close(self) -> None:
        for process in (self.controller, self.workers):
            if process.poll() is None:
                process.kill()
        self.log.close()


@contextmanager
def running(*args: Any, **kwargs: Any) -> Iterator[Sweep]:
    sweep = Sweep(*args, **kwargs)
    try:
        yield sweep
    finally:
        sweep.close()


def assert_exact(queue: SweepQueue, n: int) -> None:
    """Every trial ended exactly once, and the study holds each outcome exactly once."""
    rows = finished_rows_of(queue)
    assert [r["number"] for r in rows] == list(range(n))
    odd = [r for r in rows if r["state"] != "complete"]
    assert not odd, odd
    counts = queue.meta.counts()
    assert counts.get("complete") == n
    assert counts.get("queued", 0) == counts.get("running", 0) == counts.get("failed", 0) == 0
    meta = queue.meta.read()
    assert (int(meta["told"]), int(meta["study_trials"]), meta["state"]) == (n, n, "finished")
    assert queue.connection.zcard(f"{queue.keys.meta}:leases") == 0


def finished_rows_of(queue: SweepQueue) -> list[dict[str, Any]]:
    return trial_rows(queue)


@pytest.mark.timeout(180)
def test_r1_kill_workers_every_two_seconds(redis_url: str, tmp_path: Path) -> None:
    spec = chaos_sweep(tmp_path, "r1", 2000)
    with running(redis_url, tmp_path, spec, "r1", workers=4) as sweep:
        kills = 0
        while sweep.controller.poll() is None and kills < 12:
            time.sleep(2)  # the chaos cadence, not synchronisation
            alive = sweep.live_worker_pids()
            victim = alive.get(kills % 4)
            if victim is not None and sweep.queue.meta.state() == "running":
                os.kill(victim, signal.SIGKILL)
                kills += 1
        sweep.finish()
    assert kills >= 3, "the sweep ended before the chaos had a chance"
    assert_exact(sweep.queue, 2000)
    assert sweep.queue.meta.counts().get("requeued", 0) >= 1  # killed workers' trials came back


@pytest.mark.timeout(180)
def test_r2_kill_the_controller_twice(redis_url: str, tmp_path: Path) -> None:
    spec = chaos_sweep(tmp_path, "r2", 400)
    with running(redis_url, tmp_path, spec, "r2", workers=2) as sweep:
        for milestone in (100, 200):
            sweep.wait_for(milestone)
            sweep.controller.send_signal(signal.SIGKILL)
            sweep.controller.wait(10)
            sweep.controller = sweep.start_controller()
        sweep.finish()
    assert_exact(sweep.queue, 400)


@pytest.mark.timeout(180)
def test_r3_restart_redis_mid_sweep(
    redis_server: EmbeddedServer, redis_url: str, tmp_path: Path
) -> None:
    spec = chaos_sweep(tmp_path, "r3", 400)
    with running(redis_url, tmp_path, spec, "r3", workers=2) as sweep:
        sweep.wait_for(120)
        before = {r["number"] for r in finished_rows_of(sweep.queue) if r["state"] == "complete"}
        redis_server.restart()
        sweep.finish()
    assert_exact(sweep.queue, 400)
    after = {r["number"]: r for r in finished_rows_of(sweep.queue)}
    assert all(after[n]["state"] == "complete" for n in before)  # no completed result lost


@pytest.mark.timeout(180)
def test_r4_sigterm_and_sigusr1_to_workers_mid_trial(redis_url: str, tmp_path: Path) -> None:
    spec = chaos_sweep(tmp_path, "r4", 12)
    with running(redis_url, tmp_path, spec, "r4", workers=3, pause="3") as sweep:
        poll(lambda: len(sweep.live_worker_pids()) == 3
             and sweep.queue.meta.counts().get("running", 0) >= 3, 60, "3 busy workers")
        pids = sweep.live_worker_pids()
        os.kill(pids[0], signal.SIGTERM)  # drain: finish the current trial
        os.kill(pids[1], signal.SIGUSR1)  # walltime warning: the same, another exit code
        # The double SIGTERM must land inside one 3 s trial: start right after one began.
        poll(lambda: sweep.just_started(pids[2]), 30, "a fresh trial on the third worker")
        os.kill(pids[2], signal.SIGTERM)
        time.sleep(1.2)  # a deliberate second SIGTERM comes later than a duplicate would
        os.kill(pids[2], signal.SIGTERM)  # second: give the current trial back, leave now
        assert sweep.workers.wait(60) == 0, sweep.log_path.read_text()
        log = sweep.log_path.read_text()
        for phrase in ("drained after SIGTERM", "drained after SIGUSR1",
                       "requeued its trial after a second SIGTERM"):
            assert phrase in log
        assert sweep.queue.meta.counts().get("requeued", 0) >= 1
        sweep.workers = sweep.spawn("start-workers", "--workers", "2", "--sweep", "r4")
        sweep.finish()
    assert_exact(sweep.queue, 12)


@pytest.mark.timeout(180)
def test_r5_misbehaving_objectives_cost_only_their_trial(redis_url: str, tmp_path: Path) -> None:
    spec = write_sweep(tmp_path, {
        "name": "r5", "method": "grid", "lease": 2, "trial_timeout": 1,
        "max_worker_memory_mb": 100,
        "worker": {"module": CHAOS, "objective": "misbehave"},
        "parameters": {"kind": {"values": ["ok", "raise", "nan", "slow", "stuck", "leak"]},
                       "x": {"values": [1, 2]}},
    })
    env = cli_env(redis_url, tmp_path)
    result = hq(["run", str(spec), "--workers", "2", "--json"], env, timeout=150)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["trials"] == {"complete": 4, "pruned": 0, "failed": 8}
    status = json.loads(hq(["status", "--json", "--sweep", "r5"], env).stdout)
    assert status["failures"] == {"RuntimeError": 2, "invalid result": 2, "timeout": 4}
    rows = {(r["params"]["kind"], r["params"]["x"]): r for r in finished_rows(redis_url, "r5")}
    assert "exceeded trial_timeout" in rows[("slow", 1)]["reason"]
    assert "uninterruptible" in rows[("stuck", 1)]["reason"]
    for x in (1, 2):  # over the memory limit after a leak: that worker ran nothing after it
        leak = rows[("leak", x)]
        later = [r for r in rows.values()
                 if r["worker"] == leak["worker"] and r["started_at"] > leak["ended_at"]]
        assert leak["state"] == "complete" and not later


@pytest.mark.timeout(120)
def test_workers_recycle_after_max_trials(redis_url: str, tmp_path: Path) -> None:
    spec = chaos_sweep(tmp_path, "recycle", 20, max_trials_per_worker=5)
    result = hq(["run", str(spec), "--workers", "1", "--json"], cli_env(redis_url, tmp_path))
    assert result.returncode == 0, result.stderr
    rows = finished_rows(redis_url, "recycle")
    per_worker: dict[str, int] = {}
    for row in rows:
        per_worker[row["worker"]] = per_worker.get(row["worker"], 0) + 1
    assert len(rows) == 20 and all(r["state"] == "complete" for r in rows)
    assert len(per_worker) >= 4 and max(per_worker.values()) <= 5
