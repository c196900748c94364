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


def chaos_sweep(tmp_path: Path, name: str, run_cap: int, **extra: object) -> Path:
    """A random sweep of CHAOS's short objective."""
    return write_sweep(tmp_path, {"name": name, "method": "random", "run_cap": run_cap, **extra,
                                  "worker": {"module": CHAOS, "objective": "short"},
                                  "parameters": {"x": {"min": 0.0, "max": 1.0}}})


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
    spec = chaos_sweep(tmp_path, "ack", 100_000)
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
    spec = chaos_sweep(tmp_path, "pieces", 600, lease=3, retries=20)
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


def _spawn(env: dict[str, str], log: Path, *args: str) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "hq_sweep", *args], env=env,
                                stdout=out, stderr=out, start_new_session=True)


@pytest.mark.timeout(150)
def test_workers_leave_a_server_gone_for_good_after_their_patience(tmp_path: Path) -> None:
    """rq's own loop would retry a lost server forever: the workers leave once
    $HQ_SWEEP_PATIENCE is over, exit LOST_SERVER, are not restarted, and start-workers says
    what to do."""
    env = state_env(tmp_path / "state", HQ_SWEEP_PATIENCE="4")
    info = start_server_cli(env)
    spec = chaos_sweep(tmp_path, "gone", 100_000)
    controller = start_detached_controller(spec, "gone", env)
    log = tmp_path / "workers.log"
    workers = _spawn(env, log, "start-workers", "--workers", "2", "--sweep", "gone")
    queue = SweepQueue(connect(info.url), "gone")
    with reaped(controller, groups=(workers.pid,)):
        poll(functools.partial(_complete_at_least, queue, 50), 60, "50 results", log.read_text)
        pids = [int(w["pid"]) for w in queue.workers.all().values()]
        kill_server(info)
        code = workers.wait(90)
        poll(lambda: process_gone(controller), 60, "the controller to give up")
    text = log.read_text(errors="replace")
    assert code == 1, text
    assert "the server stayed unreachable for 4 s" in text, text
    assert "hq-sweep server start" in text, text
    assert all(process_gone(pid) for pid in pids), (pids, text)
    assert "restarting" not in text.lower(), text  # LOST_SERVER is not restarted
    controller_log = (tmp_path / "state" / "logs" / "gone" / "controller.log").read_text()
    assert "the server stayed unreachable for 4 s" in controller_log, controller_log[-2000:]


@pytest.mark.timeout(150)
def test_start_workers_waits_for_a_server_being_restarted(tmp_path: Path) -> None:
    """Workers started while the server is down wait for it (up to the patience) instead of
    failing at once, and the sweep then finishes exactly."""
    env = state_env(tmp_path / "state")
    info = start_server_cli(env)
    spec = chaos_sweep(tmp_path, "later", 120)
    controller = start_detached_controller(spec, "later", env)
    kill_server(info)
    log = tmp_path / "workers.log"
    workers = _spawn(env, log, "start-workers", "--workers", "2", "--sweep", "later")
    with reaped(controller, groups=(workers.pid,)):
        poll(lambda: "waiting up to 300 s for it to answer" in log.read_text(), 30,
             "start-workers to wait", log.read_text)
        assert workers.poll() is None
        info = start_server_cli(env)
        assert workers.wait(90) == 0, log.read_text()
    assert "the server answers" in log.read_text()
    assert_exact(SweepQueue(connect(info.url), "later"), 120)
