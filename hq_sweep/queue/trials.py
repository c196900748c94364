"""Trials through their life: queued by the controller, claimed, renewed, released or finished
by workers, requeued when a lease expires, cancelled, and read back."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rq import Queue

from hq_sweep.messages import TrialOutcome, TrialTask, dumps, loads_object
from hq_sweep.queue.client import Client, text
from hq_sweep.queue.keys import SweepKeys
from hq_sweep.queue.scripts import script

RUN_BATCH_FUNC = "hq_sweep.worker.warm_loop.run_trial_batch"


@dataclass(frozen=True, slots=True)
class Claim:
    """A trial a worker now holds: run it, then finish it with the same attempt."""

    task: TrialTask
    attempt: int


@dataclass(frozen=True, slots=True)
class Finish:
    """A finished attempt ready to record (the outcome plus record-only fields)."""

    outcome: TrialOutcome
    ended_at: float
    metrics_json: str = ""
    failure_kind: str = ""  # e.g. "ValueError", "timeout": counted per kind for status


class TrialStore:
    """One sweep's trial records, ready list and leases."""

    def __init__(self, connection: Client, keys: SweepKeys, rq_queue: Queue) -> None:
        self.connection = connection
        self.keys = keys
        self.rq_queue = rq_queue

    # ---- controller: enqueue, wake, reap, cancel ------------------------------------------

    def enqueue(self, batches: Sequence[Sequence[TrialTask]], next_number: int) -> None:
        """Write the trial records and hand them to workers as rq jobs, in one transaction."""
        now = time.time()
        pipe = self.connection.pipeline(transaction=True)
        total = 0
        for batch in batches:
            for task in batch:
                record = {"state": "queued", "attempt": 0, "params": dumps(task.params),
                          "queued_at": now}
                pipe.hset(self.keys.trial(task.number), mapping=record)  # type: ignore[arg-type]
                total += 1
        pipe.rpush(self.keys.part("ready"), *(t.number for batch in batches for t in batch))
        pipe.hincrby(self.keys.part("counts"), "queued", total)
        pipe.hset(self.keys.meta, "next", next_number)
        self.wake(len(batches), max(len(b) for b in batches), pipeline=pipe)
        pipe.execute()

    def wake(self, jobs: int, batch: int, pipeline: Any = None) -> None:
        """Send `jobs` rq jobs, each telling a worker to take up to `batch` ready trials.

        rq carries work to workers; the trials themselves wait in our ready list, so a job
        lost with a killed worker strands nothing: any later job takes them.
        """
        if jobs <= 0:
            return
        data = [Queue.prepare_data(RUN_BATCH_FUNC, args=[self.keys.sweep_id, batch],
                                   result_ttl=0, failure_ttl=3600, timeout=-1)
                for _ in range(jobs)]
        pipe = pipeline if pipeline is not None else self.connection.pipeline(transaction=False)
        self.rq_queue.enqueue_many(data, pipeline=pipe)
        if pipeline is None:
            pipe.execute()

    def waiting_jobs(self) -> int:
        return int(self.connection.llen(self.rq_queue.key))

    def drop_jobs(self) -> None:
        """Remove the rq jobs still waiting (the sweep is over)."""
        self.rq_queue.empty()

    def reap(self, attempts_allowed: int, limit: int = 1000) -> int:
        """Requeue trials whose lease expired (or fail them past their attempts)."""
        keys = [self.keys.part(k) for k in ("leases", "counts", "results", "reasons", "ready")]
        args = [self.keys.trial_prefix, attempts_allowed, limit]
        return int(script("reap").run(self.connection, keys, args))

    def cancel(self, numbers: Sequence[int]) -> int:
        if not numbers:
            return 0
        keys = [self.keys.part("counts"), *(self.keys.trial(n) for n in numbers)]
        return int(script("cancel").run(self.connection, keys, []))

    # ---- reading back -------------------------------------------------------------------

    def load_records(self, upto: int) -> list[dict[str, str]]:
        """All trial records 0..upto-1 (for a restarting controller, status and export)."""
        return self.records_for(range(upto))

    def records_for(self, numbers: Iterable[int], chunk: int = 1000) -> list[dict[str, str]]:
        """The records of these trials, in order ({} for a trial with no record)."""
        numbers = list(numbers)
        records: list[dict[str, str]] = []
        for start in range(0, len(numbers), chunk):
            pipe = self.connection.pipeline(transaction=False)
            for number in numbers[start : start + chunk]:
                pipe.hgetall(self.keys.trial(number))
            for raw in pipe.execute():
                records.append({text(k) or "": text(v) or "" for k, v in raw.items()})
        return records

    def params(self, number: int) -> dict[str, Any]:
        raw = self.connection.hget(self.keys.trial(number), "params")
        return loads_object(raw, f"trial {number} params") if raw else {}

    def intermediate_values(self, numbers: Iterable[int]) -> dict[int, dict[int, float]]:
        numbers = list(numbers)
        pipe = self.connection.pipeline(transaction=False)
        for number in numbers:
            pipe.hgetall(self.keys.intermediate(number))
        return {
            number: {int(step): float(value) for step, value in raw.items()}
            for number, raw in zip(numbers, pipe.execute(), strict=True)
        }

    # ---- workers ------------------------------------------------------------------------

    def claim(self, worker: str, limit: int, lease_s: float) -> list[Claim]:
        """Take up to `limit` ready trials, leased to `worker`."""
        keys = [self.keys.part("counts"), self.keys.part("leases"), self.keys.part("ready")]
        args: list[str | int] = [worker, int(lease_s * 1000), limit, self.keys.trial_prefix]
        flat = script("claim").run(self.connection, keys, args)
        return [Claim(TrialTask(int(n), loads_object(params, f"trial {n} params")), int(att))
                for n, att, params in zip(flat[::3], flat[1::3], flat[2::3], strict=True)]

    def finish(self, finishes: Sequence[Finish]) -> list[bool]:
        if not finishes:
            return []
        keys = [self.keys.part(k) for k in ("counts", "results", "leases", "reasons")]
        args: list[Any] = []
        for item in finishes:
            out = item.outcome
            keys.append(self.keys.trial(out.number))
            values = dumps(out.values) if out.values is not None else ""
            args += [
                out.number,
                out.attempt,
                out.state.value,
                item.ended_at,
                values,
                out.reason or "",
                item.metrics_json,
                out.encode(),
                item.failure_kind,
                f"{out.duration:.6f}" if out.duration else "",
            ]
        return [bool(flag) for flag in script("finish").run(self.connection, keys, args)]

    def renew(self, worker: str, held: Sequence[tuple[int, int]], lease_s: float) -> list[bool]:
        """Extend the leases of (number, attempt) pairs; False where the trial is not ours."""
        if not held:
            return []
        keys = [self.keys.part("leases"), *(self.keys.trial(n) for n, _ in held)]
        args: list[Any] = [worker, int(lease_s * 1000)]
        for number, attempt in held:
            args += [number, attempt]
        return [bool(flag) for flag in script("renew").run(self.connection, keys, args)]

    def release(self, worker: str, held: Sequence[tuple[int, int]]) -> list[bool]:
        """Give back claimed trials this worker will not finish; they are queued again."""
        if not held:
            return []
        keys = [self.keys.part("leases"), self.keys.part("counts"), self.keys.part("ready"),
                *(self.keys.trial(n) for n, _ in held)]
        args: list[Any] = [worker]
        for number, attempt in held:
            args += [number, attempt]
        return [bool(flag) for flag in script("release").run(self.connection, keys, args)]
