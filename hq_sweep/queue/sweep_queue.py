"""Transport: the one module that issues Redis commands.

Key schema (every value is JSON or plain text, never pickle):

    hqs:sweeps                  ZSET    sweep id -> created (unix seconds)
    hqs:s:{id}                  HASH    sweep meta: spec (JSON), spec_hash, state
                                        (running|finished), created, next (trials allocated),
                                        best (JSON), finished_reason
    hqs:s:{id}:t:{n}            HASH    trial record: state, attempt, params (JSON),
                                        queued_at, worker, started_at (claimed), lease,
                                        ended_at, duration (objective's run time, s),
                                        values (JSON), reason, metrics (JSON), prune,
                                        released (attempts handed back by stopping workers)
    hqs:s:{id}:iv:{n}           HASH    step -> intermediate value (exact decimal text)
    hqs:s:{id}:dec:{n}          LIST    the controller's latest answer to a report the worker
                                        waits on: "step verdict" (1 prune, 0 go on); expires
    hqs:s:{id}:counts           HASH    trial state -> number of trials in it (kept, not scanned),
                                        plus requeued (lease expiries and hand-backs)
    hqs:s:{id}:ready            LIST    numbers of queued trials, taken by workers' claims
    hqs:s:{id}:leases           ZSET    running trial number -> lease deadline (ms, server clock)
    hqs:s:{id}:reasons          HASH    failure kind -> number of failed trials
    hqs:s:{id}:results          LIST    TrialOutcome JSON, worker -> controller
    hqs:s:{id}:reports          LIST    Report JSON, worker -> controller (pruning)
    hqs:s:{id}:lock             STRING  token of the controller holding the sweep (PX lease)
    hqs:s:{id}:workers          HASH    worker name -> heartbeat JSON
    hqs:s:{id}:quarantine       LIST    malformed messages found in our keys, kept for a look
    rq:queue:hqs-{id}, rq:job:* rq's own keys: jobs that send a worker to take ready trials

State changes that must be atomic are Lua scripts in `lua/` (each documents its keys).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis
from redis.commands.core import Script
from rq import Queue
from rq.serializers import JSONSerializer

from hq_sweep.messages import MessageError, Report, TrialOutcome, TrialTask, dumps, loads_object

SWEEPS_KEY = "hqs:sweeps"
_DECISION_TTL_MS = 60_000
_BLPOP_BACKSTOP_S = 1  # the server-side limit of a decision wait (the real one is ours)
RUN_BATCH_FUNC = "hq_sweep.worker.warm_loop.run_trial_batch"
_SCRIPTS = ("create_sweep", "claim", "finish", "report", "cancel", "lock_renew", "lock_release",
            "renew", "reap", "release")


def _load_scripts(connection: redis.Redis) -> dict[str, Script]:
    folder = resources.files("hq_sweep.queue") / "lua"
    return {
        name: connection.register_script((folder / f"{name}.lua").read_text()) for name in _SCRIPTS
    }


def _text(raw: bytes | str | None) -> str | None:
    return raw.decode() if isinstance(raw, bytes) else raw


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


class SweepRegistry:
    """Sweeps known to a server: creation and listing."""

    def __init__(self, connection: redis.Redis) -> None:
        self.connection = connection
        self._scripts = _load_scripts(connection)

    def create(self, base_id: str, spec_json: str, spec_hash: str, base_dir: str) -> str:
        """Register a new sweep under `base_id`, or `base_id-2`, `-3`... if taken."""
        for suffix in range(1, 10_000):
            sweep_id = base_id if suffix == 1 else f"{base_id}-{suffix}"
            keys = [f"hqs:s:{sweep_id}", SWEEPS_KEY]
            if self._scripts["create_sweep"](
                keys, [sweep_id, spec_json, spec_hash, time.time(), base_dir]
            ):
                return sweep_id
        raise RuntimeError(f"no free sweep id for {base_id!r}")

    def exists(self, sweep_id: str) -> bool:
        return bool(self.connection.exists(f"hqs:s:{sweep_id}"))

    def list(self) -> list[str]:
        members: list[bytes] = self.connection.zrange(SWEEPS_KEY, 0, -1)  # type: ignore[assignment]
        return [_text(raw) or "" for raw in members]

    def latest(self) -> str | None:
        newest: list[bytes] = self.connection.zrange(SWEEPS_KEY, -1, -1)  # type: ignore[assignment]
        return _text(newest[0]) if newest else None


class SweepQueue:
    """Everything one sweep does with Redis, for controller, workers and readers alike."""

    def __init__(self, connection: redis.Redis, sweep_id: str) -> None:
        self.connection = connection
        self.sweep_id = sweep_id
        self.prefix = f"hqs:s:{sweep_id}"
        self._scripts = _load_scripts(connection)
        self.rq_queue = Queue(f"hqs-{sweep_id}", connection=connection, serializer=JSONSerializer)

    def trial_key(self, number: int) -> str:
        return f"{self.prefix}:t:{number}"

    # ---- sweep meta -------------------------------------------------------------------

    def meta(self) -> dict[str, str]:
        raw = self.connection.hgetall(self.prefix)
        return {_text(k) or "": _text(v) or "" for k, v in raw.items()}

    def state(self) -> str | None:
        return _text(self.connection.hget(self.prefix, "state"))

    def set_finished(self, reason: str) -> None:
        self.connection.hset(self.prefix, mapping={"state": "finished", "finished_reason": reason})

    def set_running(self) -> None:
        self.connection.hset(self.prefix, "state", "running")

    def set_told(self, told: int, study_trials: int | None = None) -> None:
        """How many outcomes the controller's study holds (and, at the end, how many trials)."""
        if study_trials is None:
            self.connection.hset(self.prefix, "told", told)
        else:
            self.connection.hset(self.prefix, mapping={"told": told, "study_trials": study_trials})

    def set_best(self, best: dict[str, Any] | list[dict[str, Any]]) -> None:
        self.connection.hset(self.prefix, "best", dumps(best))

    def counts(self) -> dict[str, int]:
        raw = self.connection.hgetall(f"{self.prefix}:counts")
        return {_text(k) or "": int(v) for k, v in raw.items()}

    # ---- controller lock ----------------------------------------------------------------

    def acquire_lock(self, token: str, lease_ms: int) -> bool:
        return bool(self.connection.set(f"{self.prefix}:lock", token, nx=True, px=lease_ms))

    def lock_holder(self) -> str | None:
        return _text(self.connection.get(f"{self.prefix}:lock"))

    def renew_lock(self, token: str, lease_ms: int) -> bool:
        return bool(self._scripts["lock_renew"]([f"{self.prefix}:lock"], [token, lease_ms]))

    def release_lock(self, token: str) -> None:
        self._scripts["lock_release"]([f"{self.prefix}:lock"], [token])

    # ---- controller: enqueue, read back, cancel -----------------------------------------

    def enqueue(self, batches: Sequence[Sequence[TrialTask]], next_number: int) -> None:
        """Write the trial records and hand them to workers as rq jobs, in one transaction."""
        now = time.time()
        pipe = self.connection.pipeline(transaction=True)
        total = 0
        for batch in batches:
            for task in batch:
                pipe.hset(
                    self.trial_key(task.number),
                    mapping={
                        "state": "queued",
                        "attempt": 0,
                        "params": dumps(task.params),
                        "queued_at": now,
                    },
                )
                total += 1
        pipe.rpush(f"{self.prefix}:ready", *(t.number for batch in batches for t in batch))
        pipe.hincrby(f"{self.prefix}:counts", "queued", total)
        pipe.hset(self.prefix, "next", next_number)
        self.wake(len(batches), max(len(b) for b in batches), pipeline=pipe)
        pipe.execute()

    def wake(self, jobs: int, batch: int, pipeline: Any = None) -> None:
        """Send `jobs` rq jobs, each telling a worker to take up to `batch` ready trials.

        rq carries work to workers; the trials themselves wait in our ready list, so a job
        lost with a killed worker strands nothing: any later job takes them.
        """
        if jobs <= 0:
            return
        data = [Queue.prepare_data(RUN_BATCH_FUNC, args=[self.sweep_id, batch], result_ttl=0,
                                   failure_ttl=3600, timeout=-1) for _ in range(jobs)]
        pipe = pipeline if pipeline is not None else self.connection.pipeline(transaction=False)
        self.rq_queue.enqueue_many(data, pipeline=pipe)
        if pipeline is None:
            pipe.execute()

    def waiting_jobs(self) -> int:
        return int(self.rq_queue.count)

    def reap(self, attempts_allowed: int, limit: int = 1000) -> int:
        """Requeue trials whose lease expired (or fail them past their attempts)."""
        keys = [f"{self.prefix}:{k}" for k in ("leases", "counts", "results", "reasons",
                                                 "ready")]
        return int(self._scripts["reap"](keys, [f"{self.prefix}:t:", attempts_allowed, limit]))

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
                pipe.hgetall(self.trial_key(number))
            for raw in pipe.execute():
                records.append({_text(k) or "": _text(v) or "" for k, v in raw.items()})
        return records

    def trial_params(self, number: int) -> dict[str, Any]:
        raw = self.connection.hget(self.trial_key(number), "params")
        return loads_object(raw, f"trial {number} params") if raw else {}

    def intermediate_values(self, numbers: Iterable[int]) -> dict[int, dict[int, float]]:
        numbers = list(numbers)
        pipe = self.connection.pipeline(transaction=False)
        for number in numbers:
            pipe.hgetall(f"{self.prefix}:iv:{number}")
        return {
            number: {int(step): float(value) for step, value in raw.items()}
            for number, raw in zip(numbers, pipe.execute(), strict=True)
        }

    def pop_news(self, limit: int, block_s: float,
                 with_reports: bool) -> tuple[list[TrialOutcome], list[Report]]:
        """Outcomes and (if pruning) reports, waiting up to `block_s` for either.

        Reports are read after outcomes, so every report a worker sent before an outcome we
        hold is in hand too: the pruner sees a trial's values before the trial is told.
        """
        keys = [f"{self.prefix}:results"] + ([f"{self.prefix}:reports"] if with_reports else [])
        raw = self._pop_many(keys, limit)
        if not any(raw) and block_s > 0:
            blocked = self.connection.blpop(keys, timeout=block_s)
            if blocked:
                first_key, first = bytes(blocked[0]), bytes(blocked[1])  # type: ignore[index,arg-type]
                raw = self._pop_many(keys, limit)
                raw[keys.index(first_key.decode())].insert(0, first)
        outcomes = [o for item in raw[0] if (o := self._decode(item, TrialOutcome.decode))]
        reports = [r for items in raw[1:] for item in items
                   if (r := self._decode(item, Report.decode))]
        return outcomes, reports

    def _pop_many(self, keys: Sequence[str], limit: int) -> list[list[bytes]]:
        pipe = self.connection.pipeline(transaction=False)
        for key in keys:
            pipe.lpop(key, limit)
        return [list(items or []) for items in pipe.execute()]

    def _decode(self, raw: bytes, decode: Any) -> Any:
        try:
            return decode(raw)
        except MessageError as exc:
            # Garbage in our keys is kept for inspection, never a crash.
            self.connection.rpush(
                f"{self.prefix}:quarantine",
                dumps({"error": str(exc), "raw": raw.decode(errors="replace")[:1000]}),
            )
            return None

    def decide(self, prune: Iterable[int], answers: dict[int, tuple[int, int]]) -> None:
        """Flag trials to prune (read with their next report) and answer the workers waiting
        on a decision: trial number -> (step, verdict). One round trip."""
        pipe = self.connection.pipeline(transaction=False)
        for number in prune:
            pipe.hset(self.trial_key(number), "prune", "1")
        for number, (step, verdict) in answers.items():
            key = f"{self.prefix}:dec:{number}"
            pipe.delete(key)  # only the latest answer matters
            pipe.rpush(key, f"{step} {verdict}")
            pipe.pexpire(key, _DECISION_TTL_MS)
        pipe.execute()

    def await_decision(self, number: int, step: int, timeout_s: float) -> int | None:
        """The controller's verdict on `step` (or a later one) of trial `number`: 1 prune,
        0 go on, None when none came within `timeout_s`.

        Redis times blocking commands out on its own clock tick (100 ms at the default hz),
        far too coarse for a budget of milliseconds: the deadline is kept here, and a wait
        that runs out drops its connection, which ends the BLPOP on the server too.
        """
        deadline = time.monotonic() + timeout_s
        pool = self.connection.connection_pool
        link = pool.get_connection()
        try:
            while (left := deadline - time.monotonic()) > 0:
                link.send_command("BLPOP", f"{self.prefix}:dec:{number}", _BLPOP_BACKSTOP_S)
                if not link.can_read(timeout=left):
                    link.disconnect()
                    return None
                popped = link.read_response()
                if not popped:
                    return None
                answered, verdict = (_text(popped[1]) or "").split()
                if int(answered) >= step:
                    return int(verdict)
            return None
        finally:
            pool.release(link)

    def cancel(self, numbers: Sequence[int]) -> int:
        if not numbers:
            return 0
        keys = [f"{self.prefix}:counts", *(self.trial_key(n) for n in numbers)]
        return int(self._scripts["cancel"](keys, []))

    def quarantined(self) -> int:
        return int(self.connection.llen(f"{self.prefix}:quarantine"))

    # ---- workers ------------------------------------------------------------------------

    def claim(self, worker: str, limit: int, lease_s: float) -> list[Claim]:
        """Take up to `limit` ready trials, leased to `worker`."""
        keys = [f"{self.prefix}:counts", f"{self.prefix}:leases", f"{self.prefix}:ready"]
        args: list[str | int] = [worker, int(lease_s * 1000), limit, f"{self.prefix}:t:"]
        flat = self._scripts["claim"](keys, args)
        return [Claim(TrialTask(int(n), loads_object(params, f"trial {n} params")), int(att))
                for n, att, params in zip(flat[::3], flat[1::3], flat[2::3], strict=True)]

    def finish(self, finishes: Sequence[Finish]) -> list[bool]:
        if not finishes:
            return []
        keys = [f"{self.prefix}:{k}" for k in ("counts", "results", "leases", "reasons")]
        args: list[Any] = []
        for item in finishes:
            out = item.outcome
            keys.append(self.trial_key(out.number))
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
        return [bool(flag) for flag in self._scripts["finish"](keys, args)]

    def renew(self, worker: str, held: Sequence[tuple[int, int]], lease_s: float) -> list[bool]:
        """Extend the leases of (number, attempt) pairs; False where the trial is not ours."""
        if not held:
            return []
        keys = [f"{self.prefix}:leases", *(self.trial_key(n) for n, _ in held)]
        args: list[Any] = [worker, int(lease_s * 1000)]
        for number, attempt in held:
            args += [number, attempt]
        return [bool(flag) for flag in self._scripts["renew"](keys, args)]

    def release(self, worker: str, held: Sequence[tuple[int, int]]) -> list[bool]:
        """Give back claimed trials this worker will not finish; they are queued again."""
        if not held:
            return []
        keys = [f"{self.prefix}:leases", f"{self.prefix}:counts", f"{self.prefix}:ready",
                *(self.trial_key(n) for n, _ in held)]
        args: list[Any] = [worker]
        for number, attempt in held:
            args += [number, attempt]
        return [bool(flag) for flag in self._scripts["release"](keys, args)]

    def failure_kinds(self) -> dict[str, int]:
        raw = self.connection.hgetall(f"{self.prefix}:reasons")
        return {_text(k) or "": int(v) for k, v in raw.items()}

    def report(self, report: Report, feed_pruner: bool = True) -> int:
        return self.report_many([report], feed_pruner)[report.number]

    def report_many(self, reports: Sequence[Report], feed_pruner: bool) -> dict[int, int]:
        """Record intermediate values in one call; per trial: -1 stale attempt, 1 the
        controller decided to prune it, 0 go on."""
        groups: dict[tuple[int, int], list[Report]] = {}
        for report in reports:
            groups.setdefault((report.number, report.attempt), []).append(report)
        batch = []
        for (number, attempt), group in groups.items():
            fields: list[str] = []
            for r in group:
                fields += (str(r.step), repr(r.value))
            feed = [r.encode() for r in group] if feed_pruner else []
            batch.append((str(number), str(attempt), fields, feed))
        args = [self.prefix, "1" if feed_pruner else "0", dumps(batch)]
        verdicts = self._scripts["report"]([f"{self.prefix}:reports"], args)
        return {number: int(v) for (number, _), v in zip(groups, verdicts, strict=True)}

    def heartbeat(self, worker: str, info: dict[str, Any]) -> None:
        self.connection.hset(f"{self.prefix}:workers", worker, dumps({**info, "seen": time.time()}))

    def forget_worker(self, worker: str) -> None:
        self.connection.hdel(f"{self.prefix}:workers", worker)

    def workers(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for name, raw in self.connection.hgetall(f"{self.prefix}:workers").items():
            try:
                found[_text(name) or ""] = loads_object(raw, "worker heartbeat")
            except MessageError:
                continue
        return found

    def live_workers(self, within_s: float) -> int:
        cutoff = time.time() - within_s
        return sum(1 for info in self.workers().values() if float(info.get("seen", 0)) >= cutoff)
