"""A sweep's end on the user's say-so: stop, cancel, delete; and the overview `list` shows.

`request_stop` runs stop_sweep.lua (see its header): no more trials are handed out, queued
ones are withdrawn, and with "cancel" running ones are flagged so their workers abandon them.
The controller then ends the sweep once nothing runs (or the script does, when no controller
holds it). `delete_sweep` removes every key of one sweep, found with SCAN on its own prefix.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from rq.job import Job
from rq.results import Result

from hq_sweep.errors import HqSweepError
from hq_sweep.messages import MessageError, loads_object
from hq_sweep.queue.client import Client, text
from hq_sweep.queue.keys import SWEEPS
from hq_sweep.queue.lock_token import describe_holder
from hq_sweep.queue.meta import readable
from hq_sweep.queue.registry import SweepRegistry
from hq_sweep.queue.reports import CANCEL_DECISION
from hq_sweep.queue.scripts import script
from hq_sweep.queue.sweep import SweepQueue

Mode = Literal["stop", "cancel"]
STOPPED_REASON = "stopped by user (`hq-sweep stop`)"
CANCELLED_REASON = "cancelled by user (`hq-sweep cancel`)"
FINISHED_REASONS: dict[str, str] = {"stop": STOPPED_REASON, "cancel": CANCELLED_REASON}
_WITHDRAWN = "withdrawn by `hq-sweep {mode}` before it started"
_CANCELLED = "cancelled by `hq-sweep {mode}`"
_DECISION_TTL_MS = 60_000
_SCAN_COUNT = 1000
_DELETE_BATCH = 500


class SweepStillRunning(HqSweepError):
    """A sweep that still runs cannot be deleted without stopping it first."""


@dataclass(frozen=True, slots=True)
class StopReport:
    """What a stop or cancel request did."""

    state: str  # after the request: "stopping", or "finished" (ended now or before)
    mode: str  # the mode in force ("cancel" once any request cancelled)
    withdrawn: int  # queued trials withdrawn (cancelled before they started)
    lost: int  # running trials whose worker was gone (lease expired): cancelled
    flagged: int  # running trials flagged for cancelling (their workers abandon them)
    running: int  # trials still running
    controller: str | None  # who holds the sweep ("HOST pid N"), None when nobody does
    already_finished: bool = False


def request_stop(queue: SweepQueue, mode: Mode) -> StopReport:
    """Stop (running trials finish) or cancel (they are abandoned) the sweep."""
    before = queue.meta.state()
    keys = [queue.keys.meta, *(queue.keys.part(p) for p in
                               ("counts", "ready", "leases", "results", "lock"))]
    args = [queue.keys.meta, mode, _WITHDRAWN.format(mode=mode), _CANCELLED.format(mode=mode),
            STOPPED_REASON, CANCELLED_REASON, CANCEL_DECISION.encode(), _DECISION_TTL_MS]
    state, mode_now, withdrawn, lost, flagged, running = script("stop_sweep").run(
        queue.connection, keys, args)
    state = text(state) or ""
    if state == "finished":
        queue.trials.drop_jobs()  # ended here or before: no job may wake a worker for it
    return StopReport(state, text(mode_now) or mode, int(withdrawn), int(lost), int(flagged),
                      int(running), describe_holder(queue.lock.holder()),
                      already_finished=before == "finished")


def user_stop(queue: SweepQueue) -> str | None:
    """The stop mode a user asked for ("stop", "cancel"), None while the sweep runs on;
    "deleted" once the sweep's meta is gone."""
    raw = queue.connection.hmget(queue.keys.meta, ["state", "stop"])
    state, mode = (text(v) for v in raw)  # type: ignore[union-attr]
    if state is None:
        return "deleted"
    if state == "stopping":
        return mode or "stop"
    return None


# ---- delete -----------------------------------------------------------------------------


def glob_escape(literal: str) -> str:
    """`literal` as a SCAN MATCH pattern that matches itself alone."""
    return re.sub(r"([*?\[\]\\])", r"\\\1", literal)


def _scan(connection: Client, pattern: str) -> Iterator[str]:
    for raw in connection.scan_iter(match=pattern, count=_SCAN_COUNT):
        yield text(raw) or ""


def sweep_keys(queue: SweepQueue) -> list[str]:
    """Every key of this sweep: its meta, the keys under its prefix (not those of another
    sweep whose id merely extends this one's with ':'), and rq's keys for its queue."""
    connection, sweep_id = queue.connection, queue.sweep_id
    others = [f"hqs:s:{s}" for s in SweepRegistry(connection).list()
              if s != sweep_id and s.startswith(f"{sweep_id}:")]
    found = {queue.keys.meta} if connection.exists(queue.keys.meta) else set()
    for key in _scan(connection, glob_escape(queue.keys.meta + ":") + "*"):
        if not any(key == o or key.startswith(o + ":") for o in others):
            found.add(key)
    found.update(_rq_keys(queue))
    return sorted(found)


def _rq_keys(queue: SweepQueue) -> set[str]:
    """rq's keys for the sweep's queue: the queue, its registries and their jobs."""
    rq, connection = queue.rq_queue, queue.connection
    lists = [rq.key, rq.intermediate_queue_key]
    zsets = [r.key for r in (rq.started_job_registry, rq.finished_job_registry,
                             rq.failed_job_registry, rq.deferred_job_registry,
                             rq.scheduled_job_registry, rq.canceled_job_registry)]
    pipe = connection.pipeline(transaction=False)
    for key in lists:
        pipe.lrange(key, 0, -1)
    for key in zsets:
        pipe.zrange(key, 0, -1)
    job_ids = {(text(raw) or "").split(":", 1)[0] for items in pipe.execute() for raw in items}
    candidates = [*lists, *zsets, rq.registry_cleaning_key, f"rq:workers:{rq.name}",
                  *(key for jid in job_ids for key in _job_keys(jid))]
    pipe = connection.pipeline(transaction=False)
    for key in candidates:
        pipe.exists(key)
    found = {key for key, there in zip(candidates, pipe.execute(), strict=True) if there}
    found.update(_scan(connection, glob_escape(rq.intermediate_queue_key + ":") + "*"))
    return found


def _job_keys(job_id: str) -> Iterable[str]:
    return (Job.key_for(job_id), Job.dependents_key_for(job_id), Result.get_key(job_id),
            f"rq:executions:{job_id}")


def delete_sweep(queue: SweepQueue) -> int:
    """Remove every key of the sweep and its entry in hqs:sweeps; returns how many keys."""
    keys = sweep_keys(queue)
    for start in range(0, len(keys), _DELETE_BATCH):
        queue.connection.unlink(*keys[start : start + _DELETE_BATCH])
    queue.connection.srem("rq:queues", queue.rq_queue.key)
    queue.connection.zrem(SWEEPS, queue.sweep_id)
    return len(keys)


def wait_for_no_controller(queue: SweepQueue, timeout_s: float, poll_s: float = 0.1) -> bool:
    """Wait (up to `timeout_s`) until no controller holds the sweep: one winding a stopped
    sweep down releases it when it has ended the sweep. (Workers may still write a key or
    two of a deleted sweep, and leave: what they write is fenced by the trial's state.)"""
    deadline = time.monotonic() + timeout_s
    while True:
        if queue.lock.holder() is None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)


# ---- list -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SweepOverview:
    """One line of `hq-sweep list`."""

    sweep: str
    state: str  # running, stopping, finished, or stopped/cancelled (finished by the user)
    counts: dict[str, int]
    best: float | None  # None: no complete trial yet, or a multi-objective front
    created: float  # unix seconds (the hqs:sweeps score)
    finished_reason: str = ""


def display_state(meta: dict[str, str]) -> str:
    """The state a person reads: a finished sweep a user stopped says how it ended."""
    state = meta.get("state") or "unknown"
    if state == "finished" and meta.get("stop") in ("stop", "cancel"):
        return "stopped" if meta["stop"] == "stop" else "cancelled"
    return state


def best_value(raw: str | None) -> float | None:
    """The best value from meta's best JSON; None for none, or for a multi-objective front
    (a list: `hq-sweep best` shows it)."""
    if not raw or raw.lstrip().startswith("["):
        return None
    try:
        value = loads_object(raw, "best").get("value")
    except MessageError:
        return None
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _lenient_text(raw: bytes | None) -> str:
    """A meta field as text; someone else's bytes that are no UTF-8 read as replacements
    (`display_state` and `best_value` then see a value they do not know)."""
    return raw.decode(errors="replace") if raw else ""


def overviews(connection: Client) -> list[SweepOverview]:
    """Every sweep on the server, oldest first."""
    entries: list[tuple[bytes, float]] = connection.zrange(  # type: ignore[assignment]
        SWEEPS, 0, -1, withscores=True)
    pipe = connection.pipeline(transaction=False)
    for raw_id, _ in entries:
        queue = SweepQueue(connection, text(raw_id) or "")
        pipe.hmget(queue.keys.meta, ["state", "stop", "best", "finished_reason"])
        pipe.hgetall(queue.keys.part("counts"))
    replies: list[Any] = pipe.execute()
    found = []
    for (raw_id, created), meta_raw, counts_raw in zip(entries, replies[::2], replies[1::2],
                                                       strict=True):
        meta = dict(zip(("state", "stop", "best", "finished_reason"),
                        (_lenient_text(v) for v in meta_raw), strict=True))
        counts = readable(counts_raw, int)  # garbage fields left out, as SweepMeta does
        found.append(SweepOverview(text(raw_id) or "", display_state(meta), counts,
                                   best_value(meta["best"]), float(created),
                                   meta["finished_reason"]))
    return found
