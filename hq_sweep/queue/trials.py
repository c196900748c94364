"""Trials through their life: queued by the controller, claimed, renewed, released or finished
by workers, requeued when a lease expires, cancelled, and read back."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from rq import Queue

from hq_sweep.errors import HqSweepError
from hq_sweep.limits import PARAM_BYTES, RECORD_BYTES, mib
from hq_sweep.messages import TrialOutcome, TrialRecord, TrialState, TrialTask, dumps
from hq_sweep.queue.client import Client
from hq_sweep.queue.keys import SweepKeys
from hq_sweep.queue.quarantine import Quarantine
from hq_sweep.queue.scripts import script

RUN_BATCH_FUNC = "hq_sweep.worker.warm_loop.run_trial_batch"
RENEWED_CANCELLED = 2  # renew.lua: the lease is kept, but the trial is flagged for cancelling


class EnqueueConflict(HqSweepError):
    """The trial numbers a controller asked for were taken by another controller."""


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


def _refused(record: TrialRecord, worker: str, reason: str, kind: str) -> Finish:
    outcome = TrialOutcome(record.number, record.attempt, TrialState.FAILED, reason=reason,
                           worker=worker)
    return Finish(outcome, time.time(), failure_kind=kind)


def _stored_fields(item: Finish) -> tuple[Finish, dict[str, str]]:
    """The record fields an attempt's end writes; where they are over `limits.RECORD_BYTES`
    (the worker checks the result itself: this is the last line), a failure saying so
    instead, storing none of them."""
    fields = item.record().finish_fields()
    fields.update(item.rewrite or {})
    size = sum(map(len, fields.values()))
    if size <= RECORD_BYTES:
        return item, fields
    out = item.outcome
    reason = (f"too large: the trial's record would take {mib(size)}; the limit is "
              f"{mib(RECORD_BYTES)} (hq_sweep.limits.RECORD_BYTES)")
    failed = TrialOutcome(out.number, out.attempt, TrialState.FAILED, reason=reason,
                          duration=out.duration, worker=out.worker)
    item = Finish(failed, item.ended_at, failure_kind="too large", cost=item.cost)
    return item, item.record().finish_fields()


def oversized_param(params: dict[str, Any], text_size: int) -> str:
    """Why a trial's parameters are refused ("" when they are not): a value over
    `limits.PARAM_BYTES` as JSON. `text_size`: the stored params' length, the quick check."""
    if text_size <= PARAM_BYTES:
        return ""
    for name, value in params.items():
        size = len(dumps(value))
        if size > PARAM_BYTES:
            return (f"too large: parameter {name!r} takes {mib(size)} as JSON; the limit is "
                    f"{mib(PARAM_BYTES)} a value (hq_sweep.limits.PARAM_BYTES)")
    return ""


class TrialStore:
    """One sweep's trial records, ready list and leases."""

    def __init__(self, connection: Client, keys: SweepKeys, rq_queue: Queue,
                 quarantine: Quarantine | None = None) -> None:
        self.connection = connection
        self.keys = keys
        self.rq_queue = rq_queue
        self.quarantine = quarantine or Quarantine(connection, keys)

    # ---- controller: enqueue, wake, reap, cancel ------------------------------------------

    def enqueue(self, batches: Sequence[Sequence[TrialTask]], first: int) -> None:
        """Write the trial records numbered `first`, `first`+1, ... and queue them, then
        send workers rq jobs for them. Safe to call again with the same trials after a lost
        reply: the sweep's `next` counter fences it (enqueue.lua), so nothing is queued twice.
        Raises EnqueueConflict when `next` moved on meanwhile (another controller)."""
        now = time.time()
        tasks = [task for batch in batches for task in batch]
        if not tasks:
            return
        records = [[str(task.number), TrialRecord(
            task.number, TrialState.QUEUED, params=task.params, queued_at=now,
            distributions=task.distributions or None).to_hash()] for task in tasks]
        keys = [self.keys.meta, self.keys.part("ready"), self.keys.part("counts"),
                *(self.keys.trial(task.number) for task in tasks)]
        applied = script("enqueue").run(self.connection, keys,
                                        [first, first + len(tasks), dumps(records)])
        if int(applied) < 0:
            raise EnqueueConflict(f"sweep {self.keys.sweep_id}: trial numbers from {first} "
                                  "were taken meanwhile (another controller runs it)")
        # rq jobs only carry the wake-up: lost ones are made up by the controller's
        # housekeeping (queued trials, no job waiting).
        self.wake(len(batches), max(len(b) for b in batches))

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
        return {number: _steps(raw) for number, raw in zip(numbers, pipe.execute(), strict=True)}

    # ---- workers ------------------------------------------------------------------------

    def claim(self, worker: str, limit: int, lease_s: float) -> list[Claim]:
        """Take up to `limit` ready trials, leased to `worker`. A claimed record that does
        not read (garbage params) or holds a parameter over the size limit is failed at
        once, saying why, rather than run."""
        keys = [self.keys.part("counts"), self.keys.part("leases"), self.keys.part("ready"),
                self.keys.meta]
        args: list[str | int] = [worker, int(lease_s * 1000), limit, self.keys.trial_prefix]
        flat = script("claim").run(self.connection, keys, args)
        claims, refused = [], []
        for number, raw in zip(flat[::2], flat[1::2], strict=True):
            record = _record(number, raw)
            if record.problem or record.params is None:
                problem = record.problem or "no params"
                self.quarantine.put(self.keys.trial(record.number), b"\n".join(raw), problem)
                refused.append(_refused(record, worker, f"unreadable record: {problem}",
                                        "unreadable record"))
            elif too_large := oversized_param(record.params, _params_size(raw)):
                refused.append(_refused(record, worker, too_large, "too large"))
            else:
                task = TrialTask(record.number, record.params, record.distributions or {})
                claims.append(Claim(task, record.attempt))
        self.finish(refused)
        return claims

    def finish(self, finishes: Sequence[Finish]) -> list[bool]:
        """Record how attempts ended; False where the attempt no longer holds its trial."""
        if not finishes:
            return []
        keys = [self.keys.part(k) for k in ("counts", "results", "leases", "reasons", "cost")]
        batch, sent = [], []
        for item in finishes:
            item, fields = _stored_fields(item)
            out = item.outcome
            keys.append(self.keys.trial(out.number))
            batch.append((str(out.number), str(out.attempt), fields, out.encode(),
                          item.failure_kind))
            sent.append(item)
        flags = [bool(flag) for flag in script("finish").run(self.connection, keys, [dumps(batch)])]
        self._note_failure_lines([f for f, ok in zip(sent, flags, strict=True) if ok])
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


def _params_size(flat: Sequence[bytes]) -> int:
    """The length of the params field in an HGETALL reply (field, value, ...)."""
    for index in range(0, len(flat) - 1, 2):
        if flat[index] == b"params":
            return len(flat[index + 1])
    return 0


def _steps(raw: dict[bytes, bytes]) -> dict[int, float]:
    """A trial's intermediate values (step -> value); a field that does not read (someone
    else's garbage: report.lua writes only whole steps and decimal values) is skipped."""
    found: dict[int, float] = {}
    for step, value in raw.items():
        try:
            number, reported = int(step), float(value)
        except ValueError:
            continue
        if number >= 0 and math.isfinite(reported):
            found[number] = reported
    return found
