"""Hostile input: results and parameters over the size limits, rq jobs written by someone
else (pickled, or calling another function), and garbage written mid-sweep into every key a
sweep reads. The sweep finishes with each trial ended exactly once; nothing is unpickled;
what was refused is counted in `status`. A real server, the controller and workers as real
processes (the CLI), hypothesis choosing the garbage."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from rq import Queue
from rq.serializers import JSONSerializer

from hq_sweep.queue.client import connect
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.results.summary import trial_rows
from tests.integration.helpers import cli_env, hq, poll, write_sweep

pytestmark = pytest.mark.integration
HOSTILE = str(Path(__file__).parent.parent / "workers" / "hostile.py")
ENDED = {"complete", "pruned", "failed"}


class Sweep:
    """A controller (`enqueue`) and workers (`start-workers`) as separate processes."""

    def __init__(self, redis_url: str, tmp_path: Path, spec: Path, name: str,
                 workers: int, before_workers: Callable[[SweepQueue], Any] | None) -> None:
        self.env = cli_env(redis_url, tmp_path)
        self.log_path = tmp_path / f"{name}.log"
        self.log = self.log_path.open("ab")
        self.queue = SweepQueue(connect(redis_url), name)
        self.controller = self.spawn("enqueue", str(spec), "--sweep", name)
        poll(lambda: self.queue.meta.state() is not None, 60, "the sweep's creation", self.output)
        if before_workers is not None:
            before_workers(self.queue)
        self.workers = self.spawn("start-workers", "--workers", str(workers), "--sweep", name)

    def spawn(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "hq_sweep", *args], env=self.env,
                                stdout=self.log, stderr=self.log)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def ended(self) -> int:
        counts = self.queue.meta.counts()
        return sum(counts.get(state, 0) for state in ENDED)

    def finish(self, timeout: float = 120) -> None:
        assert self.controller.wait(timeout) == 0, self.output()
        assert self.workers.wait(60) == 0, self.output()
        assert "Traceback" not in self.output(), self.output()

    def close(self) -> None:
        for process in (self.controller, self.workers):
            if process.poll() is None:
                process.kill()
                process.wait(10)
        self.log.close()


@contextmanager
def running(redis_url: str, tmp_path: Path, spec: Path, name: str, workers: int = 2,
            before_workers: Callable[[SweepQueue], Any] | None = None) -> Iterator[Sweep]:
    sweep = Sweep(redis_url, tmp_path, spec, name, workers, before_workers)
    try:
        yield sweep
    finally:
        sweep.close()


def assert_each_ended_once(queue: SweepQueue, n: int) -> list[dict[str, Any]]:
    """Trials 0..n-1 each ended (complete, pruned or failed) and were told exactly once."""
    rows = trial_rows(queue)
    assert [r["number"] for r in rows] == list(range(n))
    assert {r["state"] for r in rows} <= ENDED, [r for r in rows if r["state"] not in ENDED]
    counts = queue.meta.counts()
    assert sum(counts.get(state, 0) for state in ENDED) == n, counts
    assert counts.get("queued", 0) == counts.get("running", 0) == 0, counts
    meta = queue.meta.read()
    assert (int(meta["told"]), int(meta["study_trials"]), meta["state"]) == (n, n, "finished")
    leases = queue.connection.zrange(queue.keys.part("leases"), 0, -1)
    held = [raw for raw in leases if raw.isdigit()]  # type: ignore[union-attr]
    assert held == [], held  # (garbage planted there after the last reap may remain)
    return rows


def status_json(sweep: Sweep, name: str) -> dict[str, Any]:
    shown = hq(["status", "--sweep", name, "--json"], sweep.env)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    found: dict[str, Any] = json.loads(shown.stdout)
    return found


# ---- size limits ------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_results_and_parameters_over_the_limits_fail_their_trial_only(
        redis_url: str, tmp_path: Path) -> None:
    kinds = ["ok", "big_result", "big_param", "big_attr", "fine"]
    spec = write_sweep(tmp_path, {
        "name": "sizes", "method": "grid", "metric": {"name": "value", "goal": "minimize"},
        "worker": {"module": HOSTILE, "objective": "oversized"},
        "parameters": {"kind": {"values": kinds}}})
    with running(redis_url, tmp_path, spec, "sizes", workers=1) as sweep:
        sweep.finish()
        shown = status_json(sweep, "sizes")
        exported = hq(["export", "--sweep", "sizes", "--format", "json"], sweep.env)
    rows = {r["params"]["kind"]: r for r in assert_each_ended_once(sweep.queue, len(kinds))}
    assert {k: r["state"] for k, r in rows.items()} == {
        "ok": "complete", "big_result": "failed", "big_param": "failed", "big_attr": "failed",
        "fine": "complete"}
    assert rows["big_result"]["reason"].startswith("too large: the result's metrics")
    assert "100.0 MB" in rows["big_result"]["reason"]
    assert rows["big_param"]["reason"].startswith("too large: parameter 'blob'")
    assert "10.0 MB" in rows["big_param"]["reason"]
    assert "'blob' the most" in rows["big_attr"]["reason"]
    assert rows["ok"]["metrics"]["pid"] == rows["fine"]["metrics"]["pid"]  # one worker, on
    assert shown["failures"] == {"too large": 3}
    assert "too large: parameter 'blob'" in exported.stdout
    biggest = max(len(v) for k in sweep.queue.connection.scan_iter("hqs:s:sizes:t:*")
                  for v in sweep.queue.connection.hgetall(k).values())
    assert biggest < 10_000  # nothing of the blobs was stored


# ---- rq jobs written by someone else ----------------------------------------------------


class RunsCode:
    """Unpickling this runs a shell command: proof, if the marker appears, of a pickle.loads."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


def plant_foreign_jobs(redis_url: str, rq_name: str, tmp_path: Path) -> list[str]:
    """Jobs on the sweep's own rq queue that no hq-sweep wrote; returns their ids."""
    plain = redis.Redis.from_url(redis_url)
    pickled = Queue(rq_name, connection=plain, serializer=None)  # rq's default: pickle
    jobs = [pickled.enqueue(print, RunsCode(tmp_path / "unpickled-args")).id,
            pickled.enqueue(print, "hi", meta={"m": RunsCode(tmp_path / "unpickled-meta")}).id,
            Queue(rq_name, connection=plain, serializer=JSONSerializer)
            .enqueue("os.system", f"touch {tmp_path / 'ran-os-system'}").id]
    raw_id = uuid.uuid4().hex  # a hash written by hand: pickle bytes as its data
    plain.hset(f"rq:job:{raw_id}", mapping={
        "data": pickle.dumps(RunsCode(tmp_path / "unpickled-raw")), "status": "queued",
        "origin": rq_name, "created_at": "2026-01-01T00:00:00.000000Z"})
    queue_key = f"rq:queue:{rq_name}"
    for job in jobs:  # to the front: a worker busy with ready trials dequeues seldom
        plain.lrem(queue_key, 0, job)
    plain.lpush(queue_key, *jobs, raw_id, b"\xff\xfe not a job id")
    return [*jobs, raw_id]


@pytest.mark.timeout(180)
def test_foreign_rq_jobs_are_refused_and_never_unpickled(redis_url: str, tmp_path: Path) -> None:
    spec = write_sweep(tmp_path, {
        "name": "rqjobs", "method": "random", "run_cap": 1000,
        "worker": {"module": HOSTILE, "objective": "busy"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}}})
    planted: list[str] = []

    def plant(queue: SweepQueue) -> None:  # ahead of hq-sweep's own jobs on the sweep's queue
        poll(lambda: queue.connection.llen(f"rq:queue:{queue.keys.rq_queue}") > 0, 60,
             "the controller's first jobs")
        planted.extend(plant_foreign_jobs(redis_url, queue.keys.rq_queue, tmp_path))

    # Planted before the workers come: a worker that finds trials ready keeps running them
    # without going back to rq, so jobs planted mid-sweep may outlast a fast sweep unmet.
    with running(redis_url, tmp_path, spec, "rqjobs", before_workers=plant) as sweep:
        poll(lambda: sweep.queue.meta.quarantined() >= 5, 60, "the planted jobs refused",
             sweep.output)
        sweep.finish()
        shown = status_json(sweep, "rqjobs")
    assert_each_ended_once(sweep.queue, 1000)
    assert not list(tmp_path.glob("unpickled-*")) and not (tmp_path / "ran-os-system").exists()
    assert not any(sweep.queue.connection.exists(f"rq:job:{job}") for job in planted)
    assert shown["quarantined"] >= 5
    entries = [json.loads(e) for e in sweep.queue.connection.lrange("hqs:s:rqjobs:quarantine",
                                                                    0, -1)]
    reasons = " | ".join(e["error"] for e in entries)
    assert "never unpickled" in reasons and "not hq-sweep's job function" in reasons
    assert "not an rq job id" in reasons


def test_garbage_in_the_counters_costs_the_counts_not_a_trial(
        redis_url: str, tmp_path: Path) -> None:
    """hq-sweep's own counters overwritten mid-sweep (not numbers; a hash made a string): the
    counting scripts go on (Redis would not roll back a script refused half-way, leaving a
    trial recorded but never told), and every trial ends and is told exactly once."""
    n = 150
    spec = write_sweep(tmp_path, {
        "name": "counters", "method": "random", "run_cap": n, "lease": 3,
        "worker": {"module": HOSTILE, "objective": "busy"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}}})
    with running(redis_url, tmp_path, spec, "counters") as sweep:
        poll(lambda: sweep.ended() >= 30, 90, "30 ended trials", sweep.output)
        c, part = sweep.queue.connection, sweep.queue.keys.part
        c.hset(part("counts"), mapping={"queued": b"\xff", "running": b"lots",
                                        "complete": b"1e3", "failed": b""})
        c.hset(part("cost"), mapping={"trial_s": b"x", "gpu_s": b"[]"})
        c.delete(part("reasons"))
        c.set(part("reasons"), b"not a hash")
        sweep.finish()
    rows = trial_rows(sweep.queue)
    assert [r["number"] for r in rows] == list(range(n))
    assert {r["state"] for r in rows} <= ENDED
    meta = sweep.queue.meta.read()
    assert (int(meta["told"]), int(meta["study_trials"]), meta["state"]) == (n, n, "finished")
    counts = sweep.queue.meta.counts()
    assert counts.get("queued", 0) + counts.get("running", 0) <= 0, counts  # started again
    assert counts["complete"] > 0 and float(sweep.queue.meta.cost_totals()["trial_s"]) > 0


# ---- garbage everywhere, mid-sweep (hypothesis) -----------------------------------------

garbage = (st.binary(max_size=80)
           | st.recursive(st.none() | st.booleans() | st.integers() | st.floats()
                          | st.text(max_size=6),
                          lambda inner: st.lists(inner, max_size=5)
                          | st.dictionaries(st.text(max_size=2), inner, max_size=5),
                          max_leaves=12).map(lambda v: json.dumps(v).encode()))
number = st.integers(-1, 40)
plausible: dict[str, st.SearchStrategy[Any]] = {  # the right shape, wrong in content
    "results": st.fixed_dictionaries({
        "n": number, "a": st.integers(0, 3),
        "s": st.sampled_from(["complete", "pruned", "failed", "cancelled"]),
        "v": st.lists(st.floats(-1, 1), min_size=1, max_size=2) | st.none(), "d": st.floats()}),
    "reports": st.tuples(number, st.integers(0, 3), st.integers(-2, 5), st.floats()),
    "suggests": st.tuples(number, st.integers(0, 3), st.sampled_from(["y", "z", ""]),
                          st.sampled_from(['{"name": "FloatDistribution", "attributes": '
                                           '{"low": 0, "high": 1, "log": false, "step": null}}',
                                           '{"name": "Nope"}', "[]", "{"])),
    "workers": st.fixed_dictionaries({"seen": st.floats() | st.text(max_size=2),
                                      "trial": st.integers() | st.none(), "pid": st.text()}),
}
KINDS = ("results", "reports", "suggests", "ready", "leases", "workers", "decision",
         "suggest_answer", "intermediate", "meta", "counts", "best_history", "failure_lines",
         "rq_queue", "rq_job", "rq_job_data", "record_params", "best")


def payload_for(kind: str) -> st.SearchStrategy[bytes]:
    shaped = plausible.get(kind)
    if shaped is None:
        return garbage
    return garbage | shaped.map(lambda v: json.dumps(v).encode())


injections = st.fixed_dictionaries({kind: payload_for(kind) for kind in KINDS})


def some_trial(queue: SweepQueue, key: str) -> int:
    """A trial number from a list or lease set (0 when it is empty)."""
    found: list[bytes] = (queue.connection.lrange(key, 0, -1)  # type: ignore[assignment]
                          if key.endswith("ready") else queue.connection.zrange(key, 0, -1))
    numbers = [int(raw) for raw in found if raw.isdigit()]
    return numbers[0] if numbers else 0


def inject(queue: SweepQueue, kind: str, raw: bytes) -> str | None:
    """Write `raw` where `kind` says; returns an rq job id a worker must meet, if any."""
    c, part = queue.connection, queue.keys.part
    running = some_trial(queue, part("leases"))
    writers: dict[str, Callable[[], Any]] = {
        "results": lambda: c.rpush(part("results"), raw),
        "reports": lambda: c.rpush(part("reports"), raw),
        "suggests": lambda: c.rpush(part("suggests"), raw),
        "ready": lambda: c.rpush(part("ready"), raw),
        "leases": lambda: c.zadd(part("leases"), {raw: 0}),
        "workers": lambda: c.hset(part("workers"), raw or b"w", raw),
        "decision": lambda: c.rpush(queue.keys.decision(running), raw),
        "suggest_answer": lambda: c.rpush(queue.keys.suggest_answer(running, 1), raw),
        "intermediate": lambda: c.hset(queue.keys.intermediate(running), raw or b"s", raw),
        "meta": lambda: c.hset(queue.keys.meta, b"junk:" + raw, raw),
        "counts": lambda: c.hset(part("counts"), b"junk:" + raw, raw),
        "best_history": lambda: c.rpush(part("best_history"), raw),
        "best": lambda: c.hset(queue.keys.meta, "best", raw),  # what monitors read
        "failure_lines": lambda: c.hset(part("failure_lines"), b"junk:" + raw, raw),
        "rq_queue": lambda: c.lpush(f"rq:queue:{queue.keys.rq_queue}", raw),  # next taken
        "record_params": lambda: c.hset(queue.keys.trial(some_trial(queue, part("ready"))),
                                        "params", raw),
    }
    if kind in writers:
        writers[kind]()
        return None
    job = uuid.uuid4().hex
    if kind == "rq_job_data":  # a waiting job of ours, its data replaced
        listed: list[bytes] = c.lrange(f"rq:queue:{queue.keys.rq_queue}",  # type: ignore[assignment]
                                       0, -1)
        waiting = [raw for raw in listed if raw.isascii() and len(raw) == 36]  # uuid4s
        job = waiting[0].decode() if waiting else job
    c.hset(f"rq:job:{job}", mapping={"data": raw, "status": "queued",
                                     "origin": queue.keys.rq_queue})
    if kind == "rq_job":
        c.lpush(f"rq:queue:{queue.keys.rq_queue}", job)
    return job


def inject_all(queue: SweepQueue, payloads: dict[str, bytes]) -> list[str]:
    jobs = [inject(queue, kind, raw) for kind, raw in payloads.items()]
    inject(queue, "results", b"\xff\xfe not an outcome")  # always quarantined
    return [job for job in jobs if job is not None]


def consumed(queue: SweepQueue, jobs: list[str]) -> bool:
    waiting = set(queue.connection.lrange(f"rq:queue:{queue.keys.rq_queue}", 0, -1))
    return not waiting & {job.encode() for job in jobs}


@pytest.mark.timeout(300)
@settings(max_examples=2, derandomize=True, database=None, deadline=None,
          phases=[Phase.explicit, Phase.generate],  # no shrinking: a bounded run
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(first=injections, second=injections)
def test_garbage_in_every_key_mid_sweep_never_wedges_it(
        redis_url: str, tmp_path: Path, first: dict[str, bytes], second: dict[str, bytes]) -> None:
    name = f"g{uuid.uuid4().hex[:8]}"
    run_cap = 150
    spec = write_sweep(tmp_path, {
        "name": name, "method": "random", "run_cap": run_cap, "lease": 3, "retries": 5,
        "pruner": "median", "worker": {"module": HOSTILE, "objective": "busy"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}}}, name=f"{name}.yaml")
    with running(redis_url, tmp_path, spec, name) as sweep:
        for at, payloads in ((20, first), (60, second)):
            poll(partial(lambda at: sweep.ended() >= at, at), 90, f"{at} ended trials",
                 sweep.output)
            jobs = inject_all(sweep.queue, payloads)
            poll(partial(consumed, sweep.queue, jobs), 30,  # the workers met them
                 "the planted rq jobs taken", sweep.output)
        sweep.finish()
        shown = status_json(sweep, name)
        inject(sweep.queue, "best", second["best"])  # whether or not a new best came since
        readers = [hq(args, sweep.env) for args in (
            ["export", "--sweep", name, "--format", "csv"], ["best", "--sweep", name],
            ["monitor", "--once", "--sweep", name], ["list"], ["status", "--sweep", name],
            ["report", "--sweep", name, "--output", str(tmp_path / "report.html")])]
    for read in readers:
        assert read.returncode == 0 and "Traceback" not in read.stderr, read.stderr
    assert readers[1].stdout.startswith("trial "), readers[1].stdout
    assert_each_ended_once(sweep.queue, run_cap)
    assert shown["quarantined"] >= 2, shown
