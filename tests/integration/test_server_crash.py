"""The server dies (SIGKILL) mid-sweep and is started again the documented way
(`hq-sweep server start` in its state dir): no acknowledged result is lost, and a sweep run as
separate pieces finishes exactly, whatever else is killed meanwhile. Real processes, a real
server, real signals."""

from __future__ import annotations

import contextlib
import functools
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from hq_sweep.messages import TrialState
from hq_sweep.queue.client import connect
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.server.connection import ServerInfo, read_connection_file, server_alive
from tests.integration.helpers import hq, poll, process_gone, start_detached_controller, write_sweep
from tests.integration.test_chaos import CHAOS, assert_exact

pytestmark = pytest.mark.integration
FINISHER = str(Path(__file__).parent / "ack_finisher.py")


def state_env(state_dir: Path, **extra: str) -> dict[str, str]:
    """An environment that finds the server only through `state_dir`'s connection file."""
    env = {k: v for k, v in os.environ.items() if k != "HQ_SWEEP_REDIS_URL"}
    return {**env, "HQ_SWEEP_STATE_DIR": str(state_dir), **extra}


def start_server_cli(env: dict[str, str]) -> ServerInfo:
    started = hq(["server", "start"], env, timeout=60)
    assert started.returncode == 0, started.stderr
    info = read_connection_file(Path(env["HQ_SWEEP_STATE_DIR"]))
    assert info is not None and server_alive(info)
    return info


def kill_server(info: ServerInfo) -> None:
    os.kill(info.pid, signal.SIGKILL)
    poll(lambda: process_gone(info.pid), 10, "the server to die")


def _complete_at_least(queue: SweepQueue, target: int) -> bool:
    return queue.meta.counts().get("complete", 0) >= target


@contextmanager
def reaped(*pids: int, groups: tuple[int, ...] = ()) -> Iterator[None]:
    """Kill what a failed test leaves behind; `groups`: whole process groups (a launcher and
    the workers it started)."""
    try:
        yield
    finally:
        for pid in pids:
            if not process_gone(pid):
                os.kill(pid, signal.SIGKILL)
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)


@pytest.mark.timeout(150)
def test_a_killed_server_keeps_every_result_it_acknowledged(tmp_path: Path) -> None:
    """appendfsync everysec: the AOF is written before the reply, so a SIGKILL of the server
    process loses nothing it acknowledged (only a machine crash can lose the last second)."""
    env = state_env(tmp_path / "state")
    info = start_server_cli(env)
    spec = write_sweep(tmp_path, {"name": "ack", "method": "random", "run_cap": 100_000,
                                  "worker": {"module": CHAOS, "objective": "short"},
                                  "parameters": {"x": {"min": 0.0, "max": 1.0}}})
    controller = start_detached_controller(spec, "ack", env)
    acknowledged: set[int] = set()
    with reaped(controller):
        for round_ in range(3):
            finishers = [subprocess.Popen(
                [sys.executable, FINISHER, info.url, "ack", f"f{round_}-{i}"],
                stdout=subprocess.PIPE, text=True) for i in range(2)]
            queue = SweepQueue(connect(info.url), "ack")
            # Kill it at a different depth each round, while both finishers are mid-stream.
            target = (round_ + 1) * 150
            poll(functools.partial(_complete_at_least, queue, target), 60, f"{target} results")
            kill_server(info)
            for finisher in finishers:
                out, _ = finisher.communicate(timeout=30)
                acknowledged |= {int(line) for line in out.split()}
            info = start_server_cli(env)
        records = SweepQueue(connect(info.url), "ack").trials.records_for(sorted(acknowledged))
    assert len(acknowledged) >= 450
    lost = [r.number for r in records if r.state is not TrialState.COMPLETE or
            r.values != [float(r.number)]]
    assert not lost, f"{len(lost)} acknowledged results lost, e.g. {lost[:10]}"


@pytest.mark.timeout(240)
def test_a_sweep_in_pieces_survives_server_worker_and_controller_kills(tmp_path: Path) -> None:
    """The held-back chaos run, in small: controller and workers started separately, all
    finding the server through the state dir; the server SIGKILLed and started again three
    times, a worker and the controller SIGKILLed too; exactly run_cap trials end."""
    env = state_env(tmp_path / "state", HQ_SWEEP_TEST_PAUSE="0.01")
    info = start_server_cli(env)
    spec = write_sweep(tmp_path, {"name": "pieces", "method": "random", "run_cap": 600,
                                  "lease": 3, "retries": 20,
                                  "worker": {"module": CHAOS, "objective": "short"},
                                  "parameters": {"x": {"min": 0.0, "max": 1.0}}})
    log = (tmp_path / "processes.log").open("ab")
    spawn = lambda *args: subprocess.Popen(  # noqa: E731
        [sys.executable, "-m", "hq_sweep", *args], env=env, stdout=log, stderr=log,
        start_new_session=True)
    controller = start_detached_controller(spec, "pieces", env)
    workers = spawn("start-workers", "--workers", "2", "--sweep", "pieces")
    queue = SweepQueue(connect(info.url), "pieces")

    def reached(target: int) -> bool:
        return queue.meta.counts().get("complete", 0) >= target

    logs = lambda: (tmp_path / "processes.log").read_text(errors="replace")  # noqa: E731
    standby: subprocess.Popen[bytes] | None = None
    with reaped(controller, groups=(workers.pid,)):
        for step, target in enumerate((80, 200, 320)):
            poll(functools.partial(reached, target), 90, f"{target} complete trials", logs)
            kill_server(info)
            if step == 1:  # the controller dies while the server is down
                os.kill(controller, signal.SIGKILL)
            info = start_server_cli(env)
            if step == 1:  # ... and a new one, started once the server is back, takes over
                standby = spawn("controller", "pieces")
            if step == 0:
                pid = next(int(w["pid"]) for w in queue.workers.all().values()
                           if not process_gone(int(w["pid"])))
                os.kill(pid, signal.SIGKILL)  # the launcher starts a new one
        assert standby is not None
        assert standby.wait(150) == 0, logs()
        assert workers.wait(60) == 0, logs()
    assert_exact(SweepQueue(connect(info.url), "pieces"), 600)
