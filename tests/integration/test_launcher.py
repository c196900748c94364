"""LocalLauncher supervision, with real processes running a tiny fake worker.

The fake worker follows a per-rank plan passed on its command line: the n-th start of rank r
runs step plan[r][n] (the last step repeats). A step is an exit code, "sleep" (wait for
SIGTERM, then exit DRAINED), "stubborn" (ignore SIGTERM) or [seconds, code]. Each start
appends a JSON line (rank, pid, time, ...) to out/starts-<rank>.txt; a SIGTERM it handles
appends "<rank> <pid>" to out/signals.txt.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hq_sweep import exitcodes
from hq_sweep.launchers.local import LocalLauncher
from hq_sweep.server.credentials import ServerRef
from hq_sweep.server.handoff import Handoff

pytestmark = pytest.mark.integration

REDIS_URL = "redis://:not-a-real-secret@127.0.0.1:1/0"

FAKE_WORKER = """
import json, os, signal, sys, time
from pathlib import Path

out, plan = Path(sys.argv[1]), json.loads(sys.argv[2])
rank = os.environ["HQ_SWEEP_RANK"]

def on_term(signum, frame):
    with open(out / "signals.txt", "a") as f:
        f.write(f"{rank} {os.getpid()}\\n")
    sys.exit(10)

signal.signal(signal.SIGTERM, on_term)
starts = out / f"starts-{rank}.txt"
n = len(starts.read_text().splitlines()) if starts.exists() else 0
steps = plan.get(rank, [0])
step = steps[min(n, len(steps) - 1)]
if step == "stubborn":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print(f"fake worker rank {rank} pid {os.getpid()} start {n}", flush=True)
record = {"rank": rank, "pid": os.getpid(), "time": time.time(), "argv": sys.argv,
          "url": os.environ.get("HQ_SWEEP_REDIS_URL"),
          "url_file": os.environ.get("HQ_SWEEP_REDIS_URL_FILE"),
          "world": os.environ.get("HQ_SWEEP_WORLD_SIZE")}
with starts.open("a") as f:
    f.write(json.dumps(record) + "\\n")
if isinstance(step, int):
    sys.exit(step)
if isinstance(step, list):
    time.sleep(step[0])
    sys.exit(step[1])
while True:
    signal.pause()
"""


class Fake:
    """A fake worker script in a temporary directory, and what its processes recorded."""

    def __init__(self, tmp_path: Path) -> None:
        self.out = tmp_path / "out"
        self.state = tmp_path / "state"
        self.out.mkdir()
        self.script = tmp_path / "fake_worker.py"
        self.script.write_text(FAKE_WORKER)
        self.events: list[str] = []

    def launcher(
        self, count: int, plan: dict[int, list[Any]], record: bool = True, **kwargs: Any
    ) -> LocalLauncher:
        """A launcher of the fake worker; `record`: collect its events in self.events."""
        command = [sys.executable, str(self.script), str(self.out), json.dumps(plan)]
        if record:
            kwargs["on_event"] = self.events.append
        server = Handoff(ServerRef(REDIS_URL), self.state)
        return LocalLauncher(count, server, None, command=command, **kwargs)

    def starts(self, rank: int) -> list[dict[str, Any]]:
        path = self.out / f"starts-{rank}.txt"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines]

    def signalled(self) -> list[tuple[str, int]]:
        path = self.out / "signals.txt"
        lines = path.read_text().splitlines() if path.exists() else []
        return [(rank, int(pid)) for rank, pid in (line.split() for line in lines)]


@pytest.fixture
def fake(tmp_path: Path) -> Fake:
    return Fake(tmp_path)


@pytest.fixture
def launchers() -> Iterator[list[LocalLauncher]]:
    """Stops every launcher a test made, even when the test fails half-way."""
    made: list[LocalLauncher] = []
    yield made
    for launcher in made:
        launcher.stop(grace_s=1.0)


def supervise_until(
    launcher: LocalLauncher, condition: Callable[[], bool], what: str, timeout: float = 10.0
) -> None:
    """Run supervision passes until `condition` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        launcher.wait(0.02)  # supervises while it waits
        time.sleep(0.005)  # when no slot is active, wait() returns at once: don't spin


def gone(pid: int) -> bool:
    """True once `pid` has exited and been reaped (or is a zombie, running no more code)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.mark.timeout(30)
def test_deliberate_exits_are_not_restarted(fake: Fake, launchers: list[LocalLauncher]) -> None:
    launcher = fake.launcher(4, {0: [0], 1: [10], 2: [11], 3: [12], 4: [0]})
    launchers.append(launcher)
    launcher.start()
    assert launcher.wait(10.0)
    assert launcher.exit_codes() == [0, 10, 11, 12]
    assert [len(fake.starts(rank)) for rank in range(4)] == [1, 1, 1, 1]
    assert not launcher.active()
    assert launcher.gave_up() == []
    assert fake.events == []
    first = fake.starts(0)[0]
    assert first["url"] is None  # not in the environment: the path of a 0600 file, ...
    assert Path(first["url_file"]).parent == fake.state.resolve() / "credentials"
    assert not Path(first["url_file"]).exists()  # ... removed once the launcher ended
    assert not any("not-a-real-secret" in arg for arg in first["argv"])  # nor on the line
    assert first["world"] == "4"


@pytest.mark.timeout(30)
def test_killed_worker_is_restarted_with_its_rank_and_log(
    fake: Fake, launchers: list[LocalLauncher], tmp_path: Path
) -> None:
    launcher = fake.launcher(2, {0: ["sleep"], 1: ["sleep"]}, log_dir=tmp_path / "logs")
    launchers.append(launcher)
    launcher.start()
    assert launcher.describe().endswith(f"; worker logs in {(tmp_path / 'logs').resolve()}/")
    supervise_until(launcher, lambda: all(fake.starts(r) for r in range(2)), "both workers")
    victim = launcher.processes[1].pid
    os.kill(victim, signal.SIGKILL)
    supervise_until(launcher, lambda: len(fake.starts(1)) == 2, "the restart of worker 1")

    again = fake.starts(1)[1]
    assert again["rank"] == "1"
    assert again["pid"] != victim
    assert launcher.processes[1].pid == again["pid"]
    assert len(fake.starts(0)) == 1
    assert launcher.alive() == 2
    assert fake.events == [f"worker 1 (pid {victim}) killed by signal 9; restarting in 0.5 s"]
    log = (tmp_path / "logs" / "worker-1.log").read_text()
    assert f"pid {victim} start 0" in log  # the restarted worker appended to the same log
    assert f"pid {again['pid']} start 1" in log
    assert "killed by signal 9; restarting" in log


@pytest.mark.timeout(30)
def test_recycle_is_replaced_at_once_and_not_a_crash(
    fake: Fake, launchers: list[LocalLauncher], caplog: pytest.LogCaptureFixture
) -> None:
    recycle, hung = exitcodes.RECYCLE, exitcodes.HUNG
    # Were these crashes, max_crashes=2 would give up and the 30 s backoff would time out.
    launcher = fake.launcher(
        1,
        {0: [recycle, hung, recycle, recycle, 0]},
        record=False,  # the default on_event: the "hq_sweep.launcher" logger
        max_crashes=2,
        backoff_initial_s=30.0,
    )
    launchers.append(launcher)
    caplog.set_level(logging.WARNING, logger="hq_sweep.launcher")
    launcher.start()
    assert launcher.wait(10.0)
    assert len(fake.starts(0)) == 5
    assert launcher.exit_codes() == [0]
    assert launcher.gave_up() == []
    messages = [r.getMessage() for r in caplog.records if r.name == "hq_sweep.launcher"]
    assert len(messages) == 4
    assert messages[0] == "worker 0 recycled (trial count or memory limit); starting a fresh one"
    assert "uninterruptible trial timeout; starting a fresh one" in messages[1]


@pytest.mark.timeout(30)
def test_crash_loop_is_given_up_while_others_keep_running(
    fake: Fake, launchers: list[LocalLauncher], tmp_path: Path
) -> None:
    launcher = fake.launcher(
        2,
        {0: [1], 1: ["sleep"]},
        max_crashes=3,
        backoff_initial_s=0.01,
        log_dir=tmp_path / "logs",
    )
    launchers.append(launcher)
    launcher.start()
    supervise_until(launcher, lambda: launcher.gave_up() == [0], "giving up on worker 0")

    assert len(fake.starts(0)) == 3
    assert len(fake.starts(1)) == 1
    assert launcher.alive() == 1
    assert launcher.active()
    assert launcher.processes[1].poll() is None
    log = tmp_path / "logs" / "worker-0.log"
    assert fake.events[-1] == (
        "worker 0 crash-loops (3 crashes in 60 s, last: exit code 1 (error)); "
        f"giving up on it — log: {log}"
    )
    assert fake.events[0].endswith("exit code 1 (error); restarting in 0.01 s")
    launcher.poll()
    assert len(fake.starts(0)) == 3  # given up means never started again


@pytest.mark.timeout(30)
def test_backoff_grows_and_is_capped(fake: Fake, launchers: list[LocalLauncher]) -> None:
    launcher = fake.launcher(1, {0: [1, 1, 1, 0]}, backoff_initial_s=0.2, backoff_max_s=0.4)
    launchers.append(launcher)
    launcher.start()
    assert launcher.wait(10.0)
    times = [start["time"] for start in fake.starts(0)]
    assert len(times) == 4
    # Each gap is the crashed run + the backoff, so the backoff is a lower bound.
    assert times[1] - times[0] >= 0.2
    assert times[2] - times[1] >= 0.4
    assert [event.rsplit(" in ", 1)[1] for event in fake.events] == ["0.2 s", "0.4 s", "0.4 s"]


@pytest.mark.timeout(30)
def test_backoff_resets_after_a_long_healthy_run(
    fake: Fake, launchers: list[LocalLauncher]
) -> None:
    # The second worker outlives the (shrunk) window before crashing: back to the first delay.
    launcher = fake.launcher(1, {0: [1, [0.4, 1], 0]}, backoff_initial_s=0.05, crash_window_s=0.3)
    launchers.append(launcher)
    launcher.start()
    assert launcher.wait(10.0)
    assert len(fake.starts(0)) == 3
    assert [event.rsplit(" in ", 1)[1] for event in fake.events] == ["0.05 s", "0.05 s"]


@pytest.mark.timeout(30)
def test_signal_all_reaches_every_worker(fake: Fake, launchers: list[LocalLauncher]) -> None:
    launcher = fake.launcher(3, {0: ["sleep"], 1: ["sleep"], 2: ["sleep"]})
    launchers.append(launcher)
    launcher.start()
    supervise_until(launcher, lambda: all(fake.starts(r) for r in range(3)), "three workers")
    pids = sorted(p.pid for p in launcher.processes)
    assert launcher.describe() == (
        f"3 workers (pids {', '.join(str(p.pid) for p in launcher.processes)}); "
        "worker output on this command's stdout/stderr")
    launcher.signal_all(signal.SIGTERM)
    assert launcher.wait(10.0)
    assert sorted(pid for _, pid in fake.signalled()) == pids
    assert launcher.exit_codes() == [exitcodes.DRAINED] * 3
    assert [len(fake.starts(r)) for r in range(3)] == [1, 1, 1]


@pytest.mark.timeout(30)
def test_stopping_signal_cancels_pending_restarts(
    fake: Fake, launchers: list[LocalLauncher]
) -> None:
    launcher = fake.launcher(2, {0: [1, 0], 1: ["sleep"]}, backoff_initial_s=30.0)
    launchers.append(launcher)
    launcher.start()
    supervise_until(launcher, lambda: len(fake.events) == 1, "the crash of worker 0")
    launcher.signal_all(signal.SIGTERM)
    assert launcher.wait(5.0)  # not 30 s: the pending restart was dropped
    assert len(fake.starts(0)) == 1


@pytest.mark.timeout(30)
def test_stop_leaves_no_live_process(fake: Fake, launchers: list[LocalLauncher]) -> None:
    launcher = fake.launcher(3, {0: ["sleep"], 1: ["stubborn"], 2: [1, 0]}, backoff_initial_s=0.3)
    launchers.append(launcher)
    launcher.start()
    supervise_until(
        launcher,
        lambda: bool(fake.starts(0) and fake.starts(1)) and len(fake.events) == 1,
        "two sleeping workers and one pending restart",
    )
    pids = [start["pid"] for rank in range(3) for start in fake.starts(rank)]
    launcher.stop(grace_s=0.5)  # worker 1 ignores SIGTERM: it needs the SIGKILL
    assert all(gone(pid) for pid in pids)
    assert launcher.alive() == 0
    assert not launcher.active()
    assert launcher.exit_codes()[:2] == [exitcodes.DRAINED, -signal.SIGKILL]
    deadline = time.monotonic() + 0.5  # past the cancelled restart's due time
    while time.monotonic() < deadline:
        launcher.poll()
        time.sleep(0.05)  # checking that nothing happens: there is no event to wait for
    assert len(fake.starts(2)) == 1
