"""Define-by-run failure paths (issue 12, item 5): a `trial.suggest_*` that waits through a
killed controller or a restarted server, a duplicate request, and a request from an attempt
that was superseded. Real server over a socket, real `hq-sweep controller`/`worker`
processes, real signals; the objective (written into tmp_path) holds chosen trials at a gate
file so each test acts at a known point. (A worker killed mid-trial is
test_define_by_run.py's test_a_worker_killed_mid_trial_requeues_it_with_the_params_...)"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import pytest
from optuna.distributions import FloatDistribution, IntDistribution, distribution_to_json

from hq_sweep.messages import SuggestAnswer, SuggestRequest, TrialRecord
from hq_sweep.queue.client import connect
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.results.summary import trial_rows
from hq_sweep.server.embedded import EmbeddedServer
from tests.integration.helpers import cli_env, poll, write_sweep

pytestmark = pytest.mark.integration

# Trials named in DBR_HOLD wait, after sampling "a", for gate-<number> to appear; every
# attempt writes what it saw (at-<number>-<attempt> at the gate, seen-... at the end).
GATED = """
import json, os, pathlib, time

OUT = pathlib.Path(os.environ["DBR_OUT"])
HOLD = {int(n) for n in os.environ.get("DBR_HOLD", "").split(",") if n}


def _put(name, data):
    part = OUT / (name + ".part")
    part.write_text(json.dumps(data))
    os.replace(part, OUT / name)  # whole or absent: the test reads it as soon as it exists


def _wait_for(path):
    deadline = time.monotonic() + 90
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path.name} never appeared")
        time.sleep(0.02)


def objective(trial):
    tag = f"{trial.number}-{trial.attempt}"
    before = dict(trial.params)  # what the attempt holds before it suggests anything
    a = trial.suggest_float("a", 0.0, 1.0)
    if trial.number in HOLD:
        _put(f"at-{tag}", {"before": before, "a": a})
        _wait_for(OUT / f"gate-{trial.number}")
    b = trial.suggest_int("b", 0, 1000)
    _put(f"seen-{tag}", {"before": before, "a": a, "b": b})
    return a + b / 1000
"""

A = distribution_to_json(FloatDistribution(0.0, 1.0))  # as the worker sends them
B = distribution_to_json(IntDistribution(0, 1000))


class Processes:
    """The sweep's `hq-sweep` processes (children of the test), each logging to a file."""

    def __init__(self, url: str, tmp_path: Path, name: str, run_cap: int, hold: str,
                 **extra: Any) -> None:
        (tmp_path / "gated.py").write_text(GATED)
        self.out = tmp_path / "out"
        self.out.mkdir()
        self.spec = write_sweep(tmp_path, {"name": name, "method": "random", "seed": 3,
                                           "run_cap": run_cap,
                                           "worker": {"module": "gated.py"}, **extra})
        self.env = cli_env(url, tmp_path, DBR_OUT=str(self.out), DBR_HOLD=hold)
        self.name, self.logs = name, tmp_path / "logs"
        self.logs.mkdir()
        self.queue = SweepQueue(connect(url), name)
        self.started: list[subprocess.Popen[bytes]] = []

    def spawn(self, log: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.logs / log).open("ab") as out:
            process = subprocess.Popen([sys.executable, "-m", "hq_sweep", *args],
                                       env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL)
        self.started.append(process)
        return process

    def first_controller(self, lock_lease: str = "1") -> subprocess.Popen[bytes]:
        """`enqueue` in the foreground (registers the sweep, then is its controller); returns
        once it holds the sweep, so a worker started next finds it."""
        controller = self.spawn("controller-1.log", "enqueue", str(self.spec), "--sweep",
                                self.name, "--lock-lease", lock_lease)
        poll(lambda: self.queue.lock.holder() is not None or controller.poll() is not None,
             60, "the controller to take the sweep", self.log_text)
        assert controller.poll() is None, self.log_text()
        return controller

    def worker(self, log: str) -> subprocess.Popen[bytes]:
        return self.spawn(log, "worker", "--sweep", self.name)

    def log_text(self) -> str:
        return "\n".join(f"== {p.name}\n{p.read_text(errors='replace')[-1500:]}"
                         for p in sorted(self.logs.iterdir()))

    def seen(self, name: str, timeout: float = 60) -> dict[str, Any]:
        path = self.out / name
        poll(path.exists, timeout, name, self.log_text)
        return cast(dict[str, Any], json.loads(path.read_text()))

    def open_gate(self, number: int) -> None:
        (self.out / f"gate-{number}").touch()

    def record(self, number: int) -> TrialRecord:
        return self.queue.trials.records_for([number])[0]

    def state(self, number: int) -> str | None:
        state = self.record(number).state
        return None if state is None else state.value

    def worker_name(self, process: subprocess.Popen[bytes]) -> str:
        """The name a live worker process heartbeats under."""
        def found() -> str | None:
            return next((name for name, info in self.queue.workers.all().items()
                         if int(info.get("pid", -1)) == process.pid), None)

        poll(lambda: found() is not None, 30, "the worker's heartbeat", self.log_text)
        return cast(str, found())

    def requests(self) -> list[SuggestRequest]:
        """The suggest requests no controller has taken yet."""
        raw = cast(list[bytes], self.queue.connection.lrange(
            self.queue.keys.part("suggests"), 0, -1))
        return [SuggestRequest.decode(r) for r in raw]

    def answers(self, number: int, attempt: int) -> list[SuggestAnswer]:
        """The answers waiting for attempt `attempt` of trial `number` (left in place)."""
        key = self.queue.keys.suggest_answer(number, attempt)
        return [SuggestAnswer.decode(r)
                for r in cast(list[bytes], self.queue.connection.lrange(key, 0, -1))]

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        """SIGSTOP, and wait until the kernel has stopped it."""
        process.send_signal(signal.SIGSTOP)
        poll(lambda: Path(f"/proc/{process.pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
             == "T", 10, f"pid {process.pid} to stop")

    def finished(self, *processes: subprocess.Popen[bytes], timeout: float = 60) -> None:
        for process in processes:
            try:
                code = process.wait(timeout)
            except subprocess.TimeoutExpired:
                raise AssertionError(f"{process.args!r} still running\n{self.log_text()}") from None
            assert code == 0, f"{process.args!r} exited {code}\n{self.log_text()}"

    def close(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()  # a stopped one too: SIGKILL needs no SIGCONT
                process.wait(10)


@contextmanager
def processes(url: str, tmp_path: Path, name: str, run_cap: int, hold: str,
              **extra: Any) -> Iterator[Processes]:
    sweep = Processes(url, tmp_path, name, run_cap, hold, **extra)
    try:
        yield sweep
    finally:
        sweep.close()


def assert_exact(queue: SweepQueue, n: int) -> list[dict[str, Any]]:
    """Every trial ended exactly once, all complete, the study told each once, none left
    running or queued; the rows (flat params)."""
    rows = trial_rows(queue, flat=True)
    assert [r["number"] for r in rows] == list(range(n))
    assert all(r["state"] == "complete" for r in rows), rows
    counts = queue.meta.counts()
    assert counts.get("complete") == n, counts
    assert counts.get("queued", 0) == counts.get("running", 0) == counts.get("failed", 0) == 0
    meta = queue.meta.read()
    assert (int(meta["told"]), int(meta["study_trials"]), meta["state"]) == (n, n, "finished")
    assert queue.connection.zcard(queue.keys.part("leases")) == 0
    return rows


@pytest.mark.timeout(120)
def test_a_suggest_waits_through_a_killed_controller_and_the_next_one_answers_it(
        redis_url: str, tmp_path: Path) -> None:
    """SIGKILL the controller, then let the held trial ask for "b": the request waits in
    Redis; a new controller rebuilds the study and answers it. "a" keeps its value, the
    trial is not requeued, every trial ends once."""
    with processes(redis_url, tmp_path, "ctlkill", run_cap=3, hold="0") as sweep:
        first = sweep.first_controller()
        worker = sweep.worker("worker.log")
        at = sweep.seen("at-0-1")
        held = sweep.record(0)  # "a" is in the record before the controller dies
        assert (sweep.state(0), held.attempt) == ("running", 1)
        assert held.params == {"a": at["a"]} and set(held.distributions or {}) == {"a"}
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        sweep.open_gate(0)
        # The worker asks for "b" with no controller alive: the request waits in Redis
        # (sent again every 2 s).
        poll(lambda: (0, 1, "b") in [r[:3] for r in sweep.requests()], 30,
             "the worker to ask for b", sweep.log_text)
        assert "b" not in (sweep.record(0).params or {})
        second = sweep.spawn("controller-2.log", "controller", "ctlkill", "--lock-lease", "1")
        sweep.finished(second, worker)
    seen = json.loads((sweep.out / "seen-0-1").read_text())
    assert seen["a"] == at["a"] and seen["before"] == {}
    rows = assert_exact(sweep.queue, 3)
    assert rows[0]["params"] == {"a": at["a"], "b": seen["b"]}  # "a" kept its value
    assert rows[0]["attempt"] == 1  # the controller's death did not requeue the trial
    assert sweep.queue.meta.counts().get("requeued", 0) == 0
    assert all(set(r["params"]) == {"a", "b"} for r in rows)


@pytest.mark.timeout(120)
def test_a_suggest_waits_through_a_server_restart(tmp_path: Path) -> None:
    """The server restarts (AOF replayed) while the worker waits on the answer for "b": the
    worker and the controller both wait for it (the controller does not exit: `patiently`),
    then "b" is sampled once and the sweep finishes."""
    with EmbeddedServer(tmp_path / "redis") as server, \
            processes(server.url, tmp_path, "blip", run_cap=2, hold="0") as sweep:
        controller = sweep.first_controller(lock_lease="10")
        worker = sweep.worker("worker.log")
        at = sweep.seen("at-0-1")
        # Hold the controller so the request for "b" is still unanswered when the server
        # goes: the worker then waits on the answer through the restart.
        sweep.stop(controller)
        try:
            sweep.open_gate(0)
            poll(lambda: (0, 1, "b") in [r[:3] for r in sweep.requests()], 30,
                 "the worker to ask for b", sweep.log_text)
            server.stop()  # restart(), in two halves: both sides see the outage
        finally:
            controller.send_signal(signal.SIGCONT)
        worker_log, controller_log = sweep.logs / "worker.log", sweep.logs / "controller-1.log"
        poll(lambda: "suggest 'b' of trial 0 waits for Redis" in worker_log.read_text(), 30,
             "the worker to wait for Redis", sweep.log_text)
        poll(lambda: "Redis unreachable" in controller_log.read_text(), 30,
             "the controller to wait for Redis", sweep.log_text)
        # queue.retry.patiently: the controller waits (up to 5 minutes), it does not exit.
        assert controller.poll() is None and worker.poll() is None, sweep.log_text()
        server.start()  # same port, password and data (the AOF is replayed)
        sweep.finished(controller, worker)
        assert "Redis is back; sweep goes on" in controller_log.read_text()
        seen = json.loads((sweep.out / "seen-0-1").read_text())
        rows = assert_exact(sweep.queue, 2)
        # Sampled once: the value the objective got is the one recorded, whatever copies of
        # the request the restart left and the worker's resends added.
        assert rows[0]["params"] == {"a": at["a"], "b": seen["b"]} and seen["a"] == at["a"]
        assert rows[0]["attempt"] == 1 and sweep.queue.meta.counts().get("requeued", 0) == 0
        assert rows[1]["params"].keys() == {"a", "b"}


@pytest.mark.timeout(120)
def test_a_duplicate_suggest_is_answered_with_the_value_already_recorded(
        redis_url: str, tmp_path: Path) -> None:
    """A copy of a request already answered gets the recorded value again and leaves the
    record as it was; the worker's next suggest skips that leftover answer; a copy arriving
    after the trial ended is answered stale and changes nothing."""
    with processes(redis_url, tmp_path, "dup", run_cap=2, hold="0,1") as sweep:
        controller = sweep.first_controller()
        worker = sweep.worker("worker.log")
        at = sweep.seen("at-0-1")
        recorded = sweep.record(0)
        assert recorded.params == {"a": at["a"]}
        # The worker's 2-s resend, arriving after the answer was recorded and taken. (A slow
        # first answer may have drawn a real resend already: its answer waits here too.)
        left = len(sweep.answers(0, 1))
        sweep.queue.suggests.request(SuggestRequest(0, 1, "a", A))
        poll(lambda: len(sweep.answers(0, 1)) > left, 30, "the duplicate's answer",
             sweep.log_text)
        assert set(sweep.answers(0, 1)) == {SuggestAnswer("a", at["a"])}  # the same value
        again = sweep.record(0)
        assert (again.params, again.distributions) == (recorded.params, recorded.distributions)
        # The worker's next suggest ("b") skips that leftover answer to "a".
        sweep.open_gate(0)
        seen = sweep.seen("seen-0-1")
        poll(lambda: sweep.state(0) == "complete", 30, "trial 0 to complete", sweep.log_text)
        ended = sweep.record(0)
        assert ended.params == {"a": at["a"], "b": seen["b"]}
        # A duplicate arriving after the trial ended: stale, and the record stays as it is.
        sweep.queue.suggests.request(SuggestRequest(0, 1, "b", B))
        poll(lambda: SuggestAnswer("b", stale=True) in sweep.answers(0, 1), 30,
             "the late duplicate's answer", sweep.log_text)
        assert sweep.record(0) == ended
        sweep.open_gate(1)
        sweep.finished(controller, worker)
    rows = assert_exact(sweep.queue, 2)
    assert rows[0]["params"] == {"a": at["a"], "b": seen["b"]} and seen["a"] == at["a"]
    assert [r["attempt"] for r in rows] == [1, 1]


@pytest.mark.timeout(120)
def test_a_superseded_attempt_is_answered_stale_and_the_next_one_keeps_its_params(
        redis_url: str, tmp_path: Path) -> None:
    """A SIGSTOPped worker's lease runs out and its trial goes to another worker: a request
    of the old attempt is answered stale and records nothing; the new attempt gets "a" as
    sampled before; the old attempt, resumed (SIGCONT), stops without a result."""
    with processes(redis_url, tmp_path, "stale", run_cap=2, hold="0", lease=1) as sweep:
        controller = sweep.first_controller()
        old = sweep.worker("worker-old.log")
        first = sweep.seen("at-0-1")
        sweep.stop(old)  # its heartbeat stops: the lease runs out
        try:
            poll(lambda: sweep.state(0) == "queued", 30, "trial 0 to be requeued",
                 sweep.log_text)  # (claim.lua counts the next attempt)
            new = sweep.worker("worker-new.log")
            second = sweep.seen("at-0-2")
            new_name = sweep.worker_name(new)
            assert second["a"] == first["a"]  # the value sampled before, not a new one
            # The old attempt's request for "b" (as its 2-s resend carries it): stale, and
            # nothing recorded.
            left = len(sweep.answers(0, 1))  # (answers to resends of "a", if any)
            sweep.queue.suggests.request(SuggestRequest(0, 1, "b", B))
            poll(lambda: len(sweep.answers(0, 1)) > left, 30, "the stale answer",
                 sweep.log_text)
            assert sweep.answers(0, 1)[left:] == [SuggestAnswer("b", stale=True)]
            running = sweep.record(0)
            assert running.params == {"a": first["a"]} and running.attempt == 2
            assert sweep.state(0) == "running"
            sweep.open_gate(0)  # both attempts go on to suggest "b"
        finally:
            old.send_signal(signal.SIGCONT)
        sweep.finished(controller, new, old)
    assert not (sweep.out / "seen-0-1").exists()  # the old attempt got no "b": it stopped
    seen = json.loads((sweep.out / "seen-0-2").read_text())
    rows = assert_exact(sweep.queue, 2)
    assert rows[0]["attempt"] == 2 and rows[0]["params"] == {"a": first["a"], "b": seen["b"]}
    assert rows[0]["values"] == [pytest.approx(first["a"] + seen["b"] / 1000)]
    assert rows[0]["worker"] == new_name  # the old worker recorded nothing for it
    assert sweep.queue.meta.counts().get("requeued", 0) == 1
