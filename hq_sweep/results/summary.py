"""Reading a sweep's results back: status counts, the best trial, and full exports."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from hq_sweep.messages import TrialRecord, TrialState
from hq_sweep.queue.lock_token import describe_holder
from hq_sweep.queue.sweep import SweepQueue

STATES = tuple(state.value for state in TrialState)


def status(queue: SweepQueue) -> dict[str, Any]:
    """Counts per state (kept counters, O(1)), sweep state and live workers."""
    meta = queue.meta.read()
    counts = queue.meta.counts()
    return {
        "sweep": queue.sweep_id,
        "state": meta.get("state", "unknown"),
        "finished_reason": meta.get("finished_reason") or None,
        "trials": {state: counts.get(state, 0) for state in STATES},
        "requeued": counts.get("requeued", 0),
        "failures": queue.meta.failure_kinds(),
        "told": int(meta.get("told") or 0),
        "workers": queue.workers.live(within_s=10.0),
        "quarantined": queue.meta.quarantined(),
        "controller": describe_holder(queue.lock.holder()),
    }


def best(queue: SweepQueue) -> dict[str, Any] | None:
    raw = queue.meta.read().get("best")
    return json.loads(raw) if raw else None


def summary(queue: SweepQueue) -> dict[str, Any]:
    """The object `hq-sweep run --json` prints at the end."""
    counts = queue.meta.counts()
    return {
        "sweep": queue.sweep_id,
        "trials": {s: counts.get(s, 0) for s in ("complete", "pruned", "failed")},
        "best": best(queue),
    }


def _timing(record: TrialRecord) -> tuple[float | None, float | None, float | None]:
    """(started, ended, duration) of a trial's last attempt. The record's started_at is when
    the attempt was claimed, and a worker claims a batch at once, so the objective's own run
    time (`duration`) is the better measure where it exists."""
    started, ended, ran = record.started_at, record.ended_at, record.duration
    if ran is not None and ended is not None:
        return ended - ran, ended, ran
    duration = round(ended - started, 6) if started is not None and ended is not None else None
    return started, ended, duration


def trial_rows(queue: SweepQueue) -> list[dict[str, Any]]:
    """Every trial as a JSON-friendly dict, in trial-number order. A field of a record that
    does not read shows as unset; the row's reason says what did not read."""
    upto = int(queue.meta.read().get("next") or 0)
    records = queue.trials.load_records(upto)
    intermediate = queue.trials.intermediate_values(range(upto))
    return [_row(record, intermediate.get(record.number, {})) for record in records]


def _row(record: TrialRecord, intermediate: dict[int, float]) -> dict[str, Any]:
    started, ended, duration = _timing(record)
    unreadable = record.problem if record.exists else ""
    return {
        "number": record.number,
        "state": record.state.value if record.state is not None else None,
        "values": record.values,
        "params": record.params or {},
        "metrics": record.metrics or {},
        "intermediate_values": intermediate,
        "attempt": record.attempt,
        "worker": record.worker or None,
        "started_at": started,
        "ended_at": ended,
        "duration": duration,
        "reason": record.reason or (f"unreadable record: {unreadable}" if unreadable else None),
    }


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Flat CSV: one column per parameter and per objective value."""
    params = sorted({k for row in rows for k in row["params"]})
    width = max((len(row["values"] or []) for row in rows), default=1)
    value_cols = ["value"] if width <= 1 else [f"value_{i}" for i in range(width)]
    fixed = [
        "number",
        "state",
        *value_cols,
        "attempt",
        "worker",
        "started_at",
        "ended_at",
        "duration",
        "reason",
    ]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=[*fixed, *(f"params.{p}" for p in params)])
    writer.writeheader()
    for row in rows:
        flat = {k: row[k] for k in fixed if k in row}
        for column, value in zip(value_cols, row["values"] or [], strict=False):
            flat[column] = value
        flat.update({f"params.{k}": v for k, v in row["params"].items()})
        writer.writerow(flat)
    return out.getvalue()
