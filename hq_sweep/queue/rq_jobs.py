"""rq jobs as hq-sweep's workers accept them: JSON, and only the jobs hq-sweep itself sends.

rq resolves a job's function (and its success/failure/stopped callbacks) by import path and
calls it, and its default serializer is pickle: a job anyone else puts on a sweep's queue
could run any code in the worker. So every job a worker's rq machinery loads (dequeued, or
read back by rq's registry and intermediate-queue maintenance) is screened first, on its raw
hash: the data must be JSON (never unpickled), exactly `run_trial_batch(<this sweep>, <n>)`,
with no callbacks and no timeout. Anything else is quarantined, its hash deleted, and rq is
told it does not exist (`NoSuchJobError`), which rq's dequeue and cleanup skip.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Iterable, Mapping
from typing import Any

from rq.exceptions import NoSuchJobError
from rq.job import Job
from rq.serializers import JSONSerializer

from hq_sweep.limits import RQ_JOB_BYTES
from hq_sweep.queue.client import Client
from hq_sweep.queue.quarantine import Quarantine
from hq_sweep.queue.trials import RUN_BATCH_FUNC

_MOST_TRIALS = 1_000_000  # a job's batch size (the controller's max_batch is far below)
# rq would import and call these by name, or interrupt the job (SIGALRM) at `timeout`.
_REFUSED_FIELDS = ("success_callback_name", "failure_callback_name", "stopped_callback_name",
                   "webhooks", "dependency_ids", "dependency_id")
_JOB_ID = re.compile(rb"[A-Za-z0-9_-]{1,128}")  # rq's own pattern (uuid4 by default)


def _text_keys(raw: Mapping[Any, bytes]) -> dict[str, bytes]:
    return {k.decode(errors="replace") if isinstance(k, bytes) else str(k): v
            for k, v in raw.items()}


def _inflate(data: bytes) -> bytes | None:
    """rq's data as stored, zlib-compressed or not; None when over `RQ_JOB_BYTES` once
    inflated (a small zlib bomb must not cost the worker its memory)."""
    try:
        inflater = zlib.decompressobj()
        inflated = inflater.decompress(data, RQ_JOB_BYTES)
    except zlib.error:
        return data  # rq's fallback: stored uncompressed
    return None if inflater.unconsumed_tail else inflated


def refusal(raw: Mapping[Any, bytes], sweep_id: str) -> str:
    """Why a raw rq job hash is not a job hq-sweep sent for `sweep_id` ("" when it is)."""
    fields = _text_keys(raw)
    data = fields.get("data")
    if not isinstance(data, bytes):
        return "no data"
    if len(data) > RQ_JOB_BYTES:
        return f"data of {len(data)} bytes, over the {RQ_JOB_BYTES}-byte size limit"
    inflated = _inflate(data)
    if inflated is None:
        return f"data over the {RQ_JOB_BYTES}-byte size limit once inflated"
    try:
        func, instance, args, kwargs = json.loads(inflated)
    except (ValueError, TypeError, RecursionError):
        return "data is not JSON (a pickle? rq's default serializer: never unpickled)"
    if func != RUN_BATCH_FUNC or instance is not None or kwargs != {}:
        return f"not hq-sweep's job function: {str(func)[:100]!r}"
    if not (isinstance(args, list) and len(args) == 2 and args[0] == sweep_id
            and type(args[1]) is int and 1 <= args[1] <= _MOST_TRIALS):
        return f"arguments other than ({sweep_id!r}, trials): {str(args)[:100]}"
    named = [name for name in _REFUSED_FIELDS if fields.get(name)]
    if named:
        return f"sets {', '.join(named)} (rq would import and call it, or run others)"
    if fields.get("timeout", b"-1") != b"-1":
        return "sets a timeout (rq would interrupt a running trial)"
    return ""


def screened_job_class(sweep_id: str, quarantine: Quarantine) -> type[Job]:
    """rq's Job, screening each job it loads (see the module's doc) for one sweep."""

    class ScreenedJob(Job):
        def __init__(self, id: str | None = None, connection: Any = None,
                     serializer: Any = None) -> None:
            super().__init__(id, connection=connection, serializer=JSONSerializer)  # only

        def restore(self, raw_data: Any) -> Any:
            reason = refusal(raw_data, sweep_id)
            if not reason:
                try:
                    return super().restore(raw_data)
                except Exception as exc:  # rq's parsing of its own fields: garbage there
                    reason = f"does not read as an rq job ({str(exc)[:200]})"
            quarantine.put(f"rq:job:{self.id}", _text_keys(raw_data).get("data", b""), reason)
            self.connection.delete(self.key)
            raise NoSuchJobError(f"rq job {self.id} refused: {reason}")

        @classmethod
        def fetch_many(cls, job_ids: Iterable[str], connection: Any,
                       serializer: Any = None) -> list[Job | None]:
            """One by one, so a refused job is a None (as a missing one), not an error."""
            found: list[Job | None] = []
            for job_id in job_ids:
                try:
                    found.append(cls.fetch(job_id, connection=connection))
                except NoSuchJobError:
                    found.append(None)
            return found

    return ScreenedJob


def scrub_list(connection: Client, key: str, quarantine: Quarantine) -> int:
    """Remove from an rq list (the queue, or its intermediate queue) the entries that are no
    job id at all (rq's dequeue fails on them: binary garbage); returns how many."""
    removed = 0
    entries: list[bytes] = connection.lrange(key, 0, -1)  # type: ignore[assignment]
    for entry in set(entries):
        if not _JOB_ID.fullmatch(entry):
            connection.lrem(key, 0, entry)  # type: ignore[arg-type]  # bytes: as stored
            quarantine.put(key, entry, "not an rq job id")
            removed += 1
    return removed
