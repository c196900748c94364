"""Ending sweeps on the user's say-so, against a real server and real worker processes:
`stop`, `cancel`, `delete`, and `list` read through a pipe."""

from __future__ import annotations

import contextlib
import datetime
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hq_sweep.messages import Report, TrialOutcome, TrialState, TrialTask
from hq_sweep.queue.client import Client, connect, text
from hq_sweep.queue.lifecycle import CANCELLED_REASON, STOPPED_REASON
from hq_sweep.queue.registry import SweepRegistry
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.queue.trials import Finish
from hq_sweep.server.embedded import EmbeddedServer
from tests.integration.helpers import cli_env, hq, poll, write_sweep

pytestmark = pytest.mark.integration
TOY = str(Path(__file__).parent.parent / "workers" / "toy.py")
FINAL = {"complete", "pruned", "failed", "cancelled"}


class Sweep:
    """A controller (`enqueue`, in the foreground) and two `hq-sweep worker` processes."""

    def __init__(self, tmp_path: Path, redis_url: str, body: dict[str, Any], **env: str) -> None:
        self.id = body["name"]
        self.env = cli_env(redis_url, tmp_path, **env)
        self.log_path = tmp_path / f"{self.id}.log"
        self.log = self.log_path.open("wb")
        spec = write_sweep(tmp_path, body)
        self.queue = SweepQueue(connect(redis_url), self.id)
        self.controller = self._spawn("enqueue", str(spec), "--sweep", self.id)
        poll(lambda: self.queue.meta.state() == "running", 30, "the sweep", self.logs)
        self.workers = [self._spawn("worker", "--sweep", self.id) for _ in range(2)]

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "hq_sweep", *args], env=self.env,
                                stdout=self.log, stderr=self.log)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def counts(self) -> dict[str, int]:
        return self.queue.meta.counts()

    def exit_codes(self, timeout: float) -> list[int | None]:
        deadline = time.monotonic() + timeout
        for process in (self.controller, *self.workers):
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(max(0.1, deadline - time.monotonic()))
        return [p.poll() for p in (self.controller, *self.workers)]

    def close(self) -> None:
        for process in (self.controller, *self.workers):
            if process.poll() is None:
                process.kill()
                process.wait(10)
        self.log.close()


@pytest.fixture
def sweeps() -> Iterator[list[Sweep]]:
    started: list[Sweep] = []
    yield started
    for sweep in started:
        sweep.close()


def records(queue: SweepQueue) -> list[Any]:
    return queue.trials.load_records(int(queue.meta.read().get("next") or 0))


def assert_exact(queue: SweepQueue) -> Counter[str]:
    """Every trial is in one final state, and the kept counts say the same."""
    states = Counter(str(r.state) for r in records(queue))
    assert set(states) <= FINAL, states
    counts = queue.meta.counts()
    for state in ("queued", "running", *FINAL):
        assert counts.get(state, 0) == states.get(state, 0), (state, counts, states)
    return states


def slow_body(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "method": "random", "run_cap": 500,
            "worker": {"module": TOY, "objective": "slow_steps"},
            "parameters": {"x": {"min": 0.0, "max": 1.0}}, **extra}


@pytest.mark.timeout(60)
def test_stop_lets_running_trials_finish_and_starts_no_more(
    redis_url: str, tmp_path: Path, sweeps: list[Sweep]
) -> None:
    sweep = Sweep(tmp_path, redis_url, slow_body("stopme"), HQ_SWEEP_TEST_STEP_S="0.1")
    sweeps.append(sweep)
    poll(lambda: sweep.counts().get("complete", 0) >= 2 and sweep.counts().get("running", 0)
         >= 1, 30, "trials running", sweep.logs)
    result = hq(["stop", sweep.id, "--json"], sweep.env)
    stopped_at = time.time()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["state"] == "stopping" and report["running"] >= 1, report
    assert "stopping" in result.stderr and "finish first" in result.stderr
    assert sweep.exit_codes(30) == [0, 0, 0], sweep.logs()
    meta = sweep.queue.meta.read()
    assert meta["state"] == "finished" and meta["finished_reason"] == STOPPED_REASON
    states = assert_exact(sweep.queue)
    assert states["failed"] == states["pruned"] == 0
    done = records(sweep.queue)
    # Trials running at the stop finished as complete; none started after it.
    assert all(r.started_at is not None and r.started_at < stopped_at
               for r in done if r.state is TrialState.COMPLETE)
    assert all(r.started_at is None for r in done if r.state is TrialState.CANCELLED)
    assert states["cancelled"] >= report["withdrawn"] >= 1


@pytest.mark.timeout(60)
def test_cancel_abandons_running_trials_at_once(
    redis_url: str, tmp_path: Path, sweeps: list[Sweep]
) -> None:
    # Each trial takes 4 steps of 1 s: a cancel must end those running well before that.
    sweep = Sweep(tmp_path, redis_url, slow_body("cancelme"), HQ_SWEEP_TEST_STEP_S="1.0")
    sweeps.append(sweep)
    poll(lambda: sweep.counts().get("running", 0) == 2, 30, "two trials running", sweep.logs)
    complete_before = sweep.counts().get("complete", 0)
    result = hq(["cancel", sweep.id, "--json"], sweep.env)
    asked_at = time.time()
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["mode"] == "cancel" and report["flagged"] == 2, report
    poll(lambda: sweep.counts().get("running", 0) == 0, 2.5, "running trials cancelled",
         sweep.logs)
    assert sweep.exit_codes(20) == [0, 0, 0], sweep.logs()
    meta = sweep.queue.meta.read()
    assert meta["state"] == "finished" and meta["finished_reason"] == CANCELLED_REASON
    states = assert_exact(sweep.queue)
    assert states["complete"] == complete_before
    abandoned = [r for r in records(sweep.queue)
                 if r.state is TrialState.CANCELLED and r.started_at is not None]
    assert len(abandoned) == 2
    assert all("hq-sweep cancel" in (r.reason or "") and r.values is None for r in abandoned)
    assert all(r.ended_at is not None and r.ended_at - asked_at < 2.0 for r in abandoned)


@pytest.mark.timeout(60)
def test_cancel_sends_sigterm_to_a_silent_command_mode_program(
    redis_url: str, tmp_path: Path, sweeps: list[Sweep]
) -> None:
    program = tmp_path / "silent.py"
    program.write_text("import json, time\n"
                       "print('@hq-sweep ' + json.dumps({'score': 1.0}), flush=True)\n"
                       "time.sleep(60)\n")
    body = {"name": "cmdcancel", "method": "random", "run_cap": 50, "program": str(program),
            "lease": 2, "metric": {"name": "score", "goal": "maximize"},
            "parameters": {"x": {"min": 0.0, "max": 1.0}}}
    sweep = Sweep(tmp_path, redis_url, body)
    sweeps.append(sweep)
    poll(lambda: sweep.counts().get("running", 0) == 2, 30, "two programs running", sweep.logs)
    assert hq(["cancel", sweep.id], sweep.env).returncode == 0
    # No report comes: the heartbeat (lease / 4) learns of the cancel, the program is killed.
    poll(lambda: sweep.counts().get("running", 0) == 0, 5, "programs stopped", sweep.logs)
    assert sweep.exit_codes(20) == [0, 0, 0], sweep.logs()
    states = assert_exact(sweep.queue)
    assert states["cancelled"] >= 2 and states["complete"] == 0


def _fill(connection: Client, sweep_id: str) -> SweepQueue:
    """A sweep with keys of every kind: records, results, reports, leases, rq jobs..."""
    queue = SweepQueue(connection, SweepRegistry(connection).create(sweep_id, "{}", "h", "/"))
    assert queue.sweep_id == sweep_id
    queue.trials.enqueue([[TrialTask(n, {"x": n}) for n in range(4)]], first=0)
    claims = queue.trials.claim("w", 2, lease_s=30)
    outcome = TrialOutcome(claims[0].task.number, claims[0].attempt, TrialState.COMPLETE, [1.0])
    queue.trials.finish([Finish(outcome, time.time())])
    queue.reports.report(Report(claims[1].task.number, claims[1].attempt, 1, 0.5))
    queue.workers.heartbeat("w", {"pid": 1})
    queue.trials.wake(2, 1)
    return queue


def _keys(connection: Client) -> dict[str, bytes]:
    found = {}
    for raw in connection.scan_iter(count=1000):
        found[raw.decode()] = connection.dump(raw) or b""
    return found


def _belongs(key: str, sweep_id: str, others: tuple[str, ...] = ()) -> bool:
    if any(key == f"hqs:s:{o}" or key.startswith(f"hqs:s:{o}:") for o in others):
        return False
    return key.startswith(f"hqs:s:{sweep_id}:") or key == f"hqs:s:{sweep_id}" or key.endswith(
        f":hqs-{sweep_id}")


@pytest.mark.timeout(30)
def test_delete_removes_one_sweep_and_leaves_the_others(
    redis_url: str, redis_server: EmbeddedServer, tmp_path: Path
) -> None:
    connection = connect(redis_url)
    inspector = connect(redis_server.admin_url)  # DUMP: the sweep user may not
    doomed = _fill(connection, "lc")
    for other in ("lc-2", "lc:x"):  # ids that extend the doomed one's
        _fill(connection, other)
    hq(["stop", "lc"], cli_env(redis_url, tmp_path))  # a stopped sweep may be deleted
    before = _keys(inspector)
    job_ids = [text(j) or "" for j in connection.lrange(doomed.rq_queue.key, 0, -1)]
    assert job_ids and any(_belongs(k, "lc", ("lc:x",)) for k in before)
    result = hq(["delete", "lc", "--yes"], cli_env(redis_url, tmp_path))
    assert result.returncode == 0, result.stderr
    assert "deleted sweep lc: 4 trial(s)" in result.stderr
    after = _keys(inspector)
    assert not [k for k in after if _belongs(k, "lc", ("lc:x",))]
    assert not [k for k in after if any(j in k for j in job_ids)]
    assert SweepRegistry(connection).list() == ["lc-2", "lc:x"]
    kept = {k: v for k, v in before.items() if not _belongs(k, "lc", ("lc:x",))
            and not any(j in k for j in job_ids) and k not in ("hqs:sweeps", "rq:queues")}
    assert {k: after.get(k) for k in kept} == kept  # every other key intact, byte for byte
    assert connection.smembers("rq:queues") == {b"rq:queue:hqs-lc-2", b"rq:queue:hqs-lc:x"}
    assert len(kept) > 20 and not list(connection.scan_iter(match="hqs:s:lc:[^x]*"))


@pytest.mark.timeout(30)
def test_delete_refuses_without_yes_and_a_running_sweep_without_force(
    redis_url: str, tmp_path: Path
) -> None:
    connection = connect(redis_url)
    queue = _fill(connection, "keepme")
    env = cli_env(redis_url, tmp_path)
    unconfirmed = hq(["delete", "keepme"], env)
    assert unconfirmed.returncode == 2
    assert "would delete sweep keepme (running): 4 trial(s)" in unconfirmed.stderr
    assert "--yes" in unconfirmed.stderr and "Traceback" not in unconfirmed.stderr
    running = hq(["delete", "keepme", "--yes"], env)
    assert running.returncode == 2 and "still running" in running.stderr
    assert queue.meta.state() == "running" and queue.meta.counts()["queued"] == 2
    forced = hq(["delete", "keepme", "--yes", "--force", "--timeout", "5"], env)
    assert forced.returncode == 0, forced.stderr
    assert not list(connection.scan_iter(match="hqs:s:keepme*"))
    assert SweepRegistry(connection).list() == []


@pytest.mark.timeout(30)
def test_stop_without_a_controller_withdraws_and_says_what_remains(
    redis_url: str, tmp_path: Path
) -> None:
    connection = connect(redis_url)
    queue = _fill(connection, "orphan")  # 1 complete, 1 running (leased), 2 queued
    env = cli_env(redis_url, tmp_path)
    first = hq(["stop", "orphan"], env, timeout=20)
    assert first.returncode == 0, first.stderr
    assert "2 queued trial(s) withdrawn" in first.stderr
    assert "No controller holds this sweep" in first.stderr
    assert queue.meta.state() == "stopping"
    assert queue.trials.claim("late", 5, lease_s=30) == []  # nothing handed out any more
    [running] = [r for r in records(queue) if r.state is TrialState.RUNNING]
    outcome = TrialOutcome(running.number, running.attempt, TrialState.COMPLETE, [2.0])
    assert queue.trials.finish([Finish(outcome, time.time())]) == [True]  # it ends normally
    again = hq(["stop", "orphan"], env, timeout=20)
    assert again.returncode == 0 and "stopped" in again.stderr, again.stderr
    assert queue.meta.read()["finished_reason"] == STOPPED_REASON
    assert assert_exact(queue) == {"complete": 2, "cancelled": 2}


@pytest.mark.timeout(30)
def test_list_pipes_a_table_and_json(redis_url: str, tmp_path: Path) -> None:
    connection = connect(redis_url)
    long_id = "a-sweep-with-a-rather-long-name-that-would-not-fit-in-eighty-columns-" + "x" * 20
    _fill(connection, long_id)
    _fill(connection, "short")
    env = cli_env(redis_url, tmp_path)
    assert hq(["cancel", "short"], env).returncode == 0
    table = hq(["list"], env)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["sweep", "state", "complete", "pruned", "failed", "running",
                                "best", "created"]
    long_row = next(line for line in lines if line.startswith(long_id))  # not wrapped
    assert long_row.split()[1:7] == ["running", "1", "0", "0", "1", "-"]
    assert long_row.rstrip().endswith("s ago")
    short_row = next(line for line in lines if line.startswith("short "))
    assert short_row.split()[1] == "stopping"  # its leased trial still runs
    listed = json.loads(hq(["list", "--json"], env).stdout)
    assert [s["sweep"] for s in listed] == [long_id, "short"]
    short = listed[1]
    assert short["state"] == "stopping"
    assert short["trials"] == {"complete": 1, "pruned": 0, "failed": 0, "cancelled": 2,
                               "running": 1, "queued": 0}
    created = datetime.datetime.fromisoformat(short["created"])
    assert created.utcoffset() == datetime.timedelta(0)
    assert abs(created.timestamp() - time.time()) < 60
