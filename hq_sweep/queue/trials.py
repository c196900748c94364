"""Trials through their life: queued by the controller, claimed, renewed, released or finished
by workers, requeued when a lease expires, cancelled, and read back."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rq import Queue

from hq_sweep.messages import TrialOutcome, TrialRecord, TrialState, TrialTask, dumps
from hq_sweep.queue.client import Client
from hq_sweep.queue.keys import SweepKeys
from hq_sweep.queue.scripts import script

RUN_BATCH_FUNC = "hq_sweep.worker.warm_loop.run_trial_batch"
RENEWED_CANCELLED = 2  # renew.lua: the lease is kept, but the trial is flagged for cancelling


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
    metrics: dict[str, Any] | None = None  # JSON-able: encoded once, by the record
    failure_kind: str = ""  # e.g. "ValueError", "timeout": counted per kind for status
    failure_line: str = ""  # the failure in one line; default: the reason's first line
    rewrite: dict[str, str] | None = None  # record fields replaced (params, distributions)
    cost: dict[str, Any] | None = None  # node, gpu, gpus, rss_peak_mb, ... (worker.cost)

    def record(self) -> TrialRecord:
        return TrialRecord.of(self.outcome, self.ended_at, self.metrics, self.cost)

    def summary_line(self) -> str:
        if self.failure_line:
            return self.failure_line
        lines = (self.outcome.reason or "").strip().splitlines()
        return lines[0][:200] if lines else self.failure_kind


@dataclass(frozen=True, slots=True)
class Reaped:
    """What a reap did: trials requeued (workers must be woken for them), and the records of
    those it failed, past their attempts (the caller tells them: nothing else will)."""

    requeued: int
    failed: list[TrialRecord]


def _record(number: Any, flat: Sequence[bytes]) -> TrialRecord:
    """A record from a script's HGETALL reply (field, value, field, value, ...)."""
    pairs = [raw.decode(errors="replace") for raw in flat]
    return TrialRecord.from_hash(int(number), dict(zip(pairs[::2], pairs[1::2], strict=True)))


def _unreadable(record: TrialRecord, worker: str) -> Finish:
    reason = f"unreadable record: {record.problem or 'no params'}"
    outcome = TrialOutcome(record.number, record.attempt, TrialState.FAILED, reason=reason,
                           worker=worker)
    return Finish(outcome, time.time(), failure_kind="unreadable record")


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
                record = TrialRecord(task.number, TrialState.QUEUED, params=task.params,
                                     queued_at=now,
                                     distributions=task.distributions or None).to_hash()
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

    def reap(self, attempts_allowed: int, limit: int = 1000) -> Reaped:
        """Requeue trials whose lease expired, or fail them past their attempts."""
        keys = [self.keys.part(k) for k in ("leases", "counts", "reasons", "ready")]
        args = [self.keys.trial_prefix, attempts_allowed, limit]
        requeued, *flat = script("reap").run(self.connection, keys, args)
        failed = [_record(n, raw) for n, raw in zip(flat[::2], flat[1::2], strict=True)]
        if failed and failed[-1].reason:
            self.connection.hset(self.keys.part("failure_lines"), "lease expired",
                                 failed[-1].reason)
        return Reaped(int(requeued), failed)

    def cancel(self, numbers: Sequence[int]) -> list[int]:
        """Withdraw the trials no worker has started; returns those it withdrew."""
        if not numbers:
            return []
        keys = [self.keys.part("counts"), *(self.keys.trial(n) for n in numbers)]
        return [int(n) for n in script("cancel").run(self.connection, keys, list(numbers))]

    # ---- reading back -------------------------------------------------------------------

    def load_records(self, upto: int) -> list[TrialRecord]:
        """All trial records 0..upto-1 (for a restarting controller, status and export)."""
        return self.records_for(range(upto))

    def records_for(self, numbers: Iterable[int], chunk: int = 1000) -> list[TrialRecord]:
        """The records of these trials, in order (one with no record in Redis says so:
        `exists` is False)."""
        numbers = list(numbers)
        records: list[TrialRecord] = []
        for start in range(0, len(numbers), chunk):
            part = numbers[start : start + chunk]
            pipe = self.connection.pipeline(transaction=False)
            for number in part:
                pipe.hgetall(self.keys.trial(number))
            for number, raw in zip(part, pipe.execute(), strict=True):
                stored = {k.decode(errors="replace"): v.decode(errors="replace")
                          for k, v in raw.items()}
                records.append(TrialRecord.from_hash(number, stored))
        return records

    def params(self, number: int) -> dict[str, Any]:
        """Trial `number`'s parameters ({} when its record does not hold readable ones)."""
        return self.records_for([number])[0].params or {}

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
        """Take up to `limit` ready trials, leased to `worker`. A claimed record that does
        not read (garbage params) is failed at once, saying why, rather than run."""
        keys = [self.keys.part("counts"), self.keys.part("leases"), self.keys.part("ready"),
                self.keys.meta]
        args: list[str | int] = [worker, int(lease_s * 1000), limit, self.keys.trial_prefix]
        flat = script("claim").run(self.connection, keys, args)
        claims, unreadable = [], []
        for number, raw in zip(flat[::2], flat[1::2], strict=True):
            record = _record(number, raw)
            if record.problem or record.params is None:
                unreadable.append(_unreadable(record, worker))
            else:
                task = TrialTask(record.number, record.params, record.distributions or {})
                claims.append(Claim(task, record.attempt))
        self.finish(unreadable)
        return claims

    def finish(self, finishes: Sequence[Finish]) -> list[bool]:
        """Record how attempts ended; False where the attempt no longer holds its trial."""
        if not finishes:
            return []
        keys = [self.keys.part(k) for k in ("counts", "results", "leases", "reasons", "cost")]
        batch = []
        for item in finishes:
            out = item.outcome
            keys.append(self.keys.trial(out.number))
            fields = item.record().finish_fields()
            fields.update(item.rewrite or {})
            batch.append((str(out.number), str(out.attempt), fields, out.encode(),
                          item.failure_kind))
        flags = [bool(flag) for flag in script("finish").run(self.connection, keys, [dumps(batch)])]
        self._note_failure_lines([f for f, ok in zip(finishes, flags, strict=True) if ok])
        return flags

    def _note_failure_lines(self, recorded: Sequence[Finish]) -> None:
        """Keep the latest one-line reason of each failure kind, shown beside its count.
        Not part of finish.lua: a lost line costs a display, never a count."""
        lines: dict[Any, Any] = {f.failure_kind: f.summary_line() for f in recorded
                                 if f.failure_kind}
        if lines:
            self.connection.hset(self.keys.part("failure_lines"), mapping=lines)

    def renew(self, worker: str, held: Sequence[tuple[int, int]], lease_s: float) -> list[int]:
        """Extend the leases of (number, attempt) pairs: 1 renewed, 0 where the trial is not
        ours, RENEWED_CANCELLED where it is but `hq-sweep cancel` flagged it (abandon it)."""
        if not held:
            return []
        keys = [self.keys.part("leases"), *(self.keys.trial(n) for n, _ in held)]
        args: list[Any] = [worker, int(lease_s * 1000)]
        for number, attempt in held:
            args += [number, attempt]
        return [int(flag) for flag in script("renew").run(self.connection, keys, args)]

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
