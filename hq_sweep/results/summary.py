"""Reading a sweep's results back: status counts, the best trial, and full exports."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from hq_sweep.errors import HqSweepError
from hq_sweep.messages import TrialRecord, TrialState
from hq_sweep.queue.lock_token import describe_holder
from hq_sweep.queue.meta import decode_best
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.results.cost import COST_COLUMNS, cost_columns, cost_totals
from hq_sweep.spec.param_tree import nest
from hq_sweep.spec.sweep import SweepSpec, parse_spec

STATES = tuple(state.value for state in TrialState)


def status(queue: SweepQueue) -> dict[str, Any]:
    """Counts per state (kept counters, O(1)), sweep state and live workers."""
    meta = queue.meta.read()
    counts = queue.meta.counts()
    workers = queue.workers.live(within_s=10.0)
    return {
        "sweep": queue.sweep_id,
        "state": sweep_state(meta, workers),
        "stalled": meta.get("stalled") or None,
        "finished_reason": meta.get("finished_reason") or None,
        "trials": {state: counts.get(state, 0) for state in STATES},
        "requeued": counts.get("requeued", 0),
        "failures": queue.meta.failure_kinds(),
        "failure_lines": queue.meta.failure_lines(),
        "told": int(meta.get("told") or 0),
        "workers": workers,
        "quarantined": queue.meta.quarantined(),
        "controller": describe_holder(queue.lock.holder()),
        "cost": cost_totals(queue),
    }


def finished_count(counts: dict[str, int]) -> int:
    """Trials that have ended with a result: complete, pruned or failed."""
    return sum(counts.get(s, 0) for s in ("complete", "pruned", "failed"))


def sweep_state(meta: dict[str, str], live_workers: int) -> str:
    """The meta's state, but "stalled" for a running sweep whose workers could not start
    (their import or setup() failed) and none is left: it will not move until fixed."""
    state = meta.get("state") or "unknown"
    if state == "running" and meta.get("stalled") and not live_workers:
        return "stalled"
    return state


def top_failures(
    counts: dict[str, int], lines: dict[str, str], limit: int = 3
) -> list[dict[str, Any]]:
    """The commonest failure kinds, most first: kind, trials, its latest failure in a line."""
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return [{"kind": kind, "count": count, "line": lines.get(kind) or kind}
            for kind, count in ranked]


def failure_text(failure: dict[str, Any]) -> str:
    """`12 failed: ValueError: lr too big (train.py:8)`: the kind is said once."""
    kind, line = failure["kind"], failure["line"]
    what = line if line.startswith(kind) else f"{kind}: {line}"
    return f"{failure['count']} failed: {what}"


def best(queue: SweepQueue, *, flat: bool = False) -> dict[str, Any] | None:
    """The best trial as the controller keeps it in the meta hash (O(1)): number, value and
    params nested as in the sweep file (`flat`: with dotted names, read from its record)."""
    found = decode_best(queue.meta.read().get("best"))
    if found is None and queue.meta.counts().get("complete") and not multi_objective(queue):
        # Not published yet, or overwritten with garbage: the records know.
        top = top_trials(queue, 1, flat=flat)
        return top[0] if top else None
    if found is not None and flat:
        found["params"] = queue.trials.params(int(found["number"]))
    return found


def summary(queue: SweepQueue) -> dict[str, Any]:
    """The object `hq-sweep run --json` prints at the end."""
    counts = queue.meta.counts()
    return {
        "sweep": queue.sweep_id,
        "trials": {s: counts.get(s, 0) for s in ("complete", "pruned", "failed")},
        "best": best(queue),
        "failures": top_failures(queue.meta.failure_kinds(), queue.meta.failure_lines()),
        "quarantined": queue.meta.quarantined(),  # malformed items set aside (queue.quarantine)
    }


def iso_time(epoch: float | None) -> str | None:
    """An epoch time as users read it: ISO-8601 in UTC, always with microseconds."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds")


def spec_from_meta(meta: dict[str, str]) -> SweepSpec | None:
    """The sweep's spec from its meta hash; None when it has none that parses."""
    try:
        return parse_spec(json.loads(meta["spec"]), source="stored sweep")
    except (KeyError, ValueError, TypeError, RecursionError, HqSweepError):
        return None


ParamsShape = Callable[[dict[str, Any]], dict[str, Any]]


def params_shape(spec: SweepSpec | None, *, flat: bool) -> ParamsShape:
    """How rows show a record's (flat, dotted) params: nested as in the sweep file, or flat."""
    paths = spec.parameter_paths() if spec is not None and not flat else {}

    def shape(params: dict[str, Any]) -> dict[str, Any]:
        try:
            return nest(paths, params)
        except ValueError:  # an undeclared name in the way of a group: show them flat
            return dict(params)

    return shape


def _timing(record: TrialRecord) -> tuple[float | None, float | None, float | None]:
    """(started, ended, duration) of a trial's last attempt. The record's started_at is when
    the attempt was claimed, and a worker claims a batch at once, so the objective's own run
    time (`duration`) is the better measure where it exists."""
    started, ended, ran = record.started_at, record.ended_at, record.duration
    if ran is not None and ended is not None:
        return ended - ran, ended, ran
    duration = round(ended - started, 6) if started is not None and ended is not None else None
    return started, ended, duration


def trial_rows(queue: SweepQueue, *, flat: bool = False) -> list[dict[str, Any]]:
    """Every trial as a JSON-friendly dict, in trial-number order: params nested as in the
    sweep file (`flat`: dotted names), times ISO-8601 UTC. A field of a record that does not
    read shows as unset; the row's reason says what did not read."""
    meta = queue.meta.read()
    return _rows(queue, int(meta.get("next") or 0), params_shape(spec_from_meta(meta), flat=flat))


def _rows(queue: SweepQueue, upto: int, shape: ParamsShape) -> list[dict[str, Any]]:
    records = queue.trials.load_records(upto)
    intermediate = queue.trials.intermediate_values(range(upto))
    return [_row(record, intermediate.get(record.number, {}), shape) for record in records]


def _row(record: TrialRecord, intermediate: dict[int, float],
         shape: ParamsShape) -> dict[str, Any]:
    started, ended, duration = _timing(record)
    unreadable = record.problem if record.exists else ""
    return {
        "number": record.number,
        "state": record.state.value if record.state is not None else None,
        "values": record.values,
        "params": shape(record.params or {}),
        "metrics": record.metrics or {},
        "intermediate_values": intermediate,
        "attempt": record.attempt,
        "worker": record.worker or None,
        "started_at": iso_time(started),
        "ended_at": iso_time(ended),
        "duration": duration,
        "reason": record.reason or (f"unreadable record: {unreadable}" if unreadable else None),
        **cost_columns(record, duration),
    }


def multi_objective(queue: SweepQueue) -> bool:
    """Whether the sweep optimizes several metrics (then it has a Pareto set, no one best)."""
    spec = spec_from_meta(queue.meta.read())
    return spec is not None and len(spec.objectives()) > 1


def top_trials(queue: SweepQueue, k: int | None = None, *,
               flat: bool = False) -> list[dict[str, Any]]:
    """The best `k` complete trials, best first (ties: the earlier trial); for a multi-objective
    sweep its Pareto set (the trials no other beats on every objective), by the first
    objective. Each as `best` shows it, with "values" instead of "value" for several."""
    meta = queue.meta.read()
    spec = spec_from_meta(meta)
    signs = [1.0 if m.maximize else -1.0 for m in spec.objectives()] if spec else [-1.0]
    every = _rows(queue, int(meta.get("next") or 0), params_shape(spec, flat=flat))
    rows = [row for row in every if row["state"] == TrialState.COMPLETE.value and row["values"]]
    ranked = sorted(rows, key=lambda row: -signs[0] * row["values"][0])
    if len(signs) > 1:
        ranked = pareto_front(ranked, signs)
    return [_ranked(row, single=len(signs) == 1) for row in ranked[:k]]


def pareto_front(rows: list[dict[str, Any]], signs: list[float]) -> list[dict[str, Any]]:
    """The rows no other row dominates (at least as good on every objective, better on one)."""
    scored = [[sign * value for sign, value in zip(signs, row["values"], strict=False)]
              for row in rows]

    def dominated(mine: list[float]) -> bool:
        return any(all(o >= m for o, m in zip(other, mine, strict=True)) and other != mine
                   for other in scored)

    return [row for row, mine in zip(rows, scored, strict=True) if not dominated(mine)]


def _ranked(row: dict[str, Any], single: bool) -> dict[str, Any]:
    values: dict[str, Any] = {"value": row["values"][0]} if single else {"values": row["values"]}
    return {"number": row["number"], **values, "params": row["params"]}


CSV_FIXED = ("number", "state", "attempt", "worker", "started_at", "ended_at", "duration",
             "reason", "metrics", "intermediate_values", *COST_COLUMNS)


def flat_table(rows: list[dict[str, Any]]) -> tuple[list[str], list[dict[str, Any]]]:
    """Columns and flat rows, as CSV and Parquet have them: one column per objective value
    and per parameter (`params.a.b`: give it rows with flat params); metrics and
    intermediate values as JSON text (compact, keys sorted)."""
    params = sorted({k for row in rows for k in row["params"]})
    width = max((len(row["values"] or []) for row in rows), default=1)
    value_cols = ["value"] if width <= 1 else [f"value_{i}" for i in range(width)]
    fixed = [*CSV_FIXED[:2], *value_cols, *CSV_FIXED[2:]]
    return [*fixed, *(f"params.{p}" for p in params)], [_csv_row(r, value_cols) for r in rows]


def to_csv(rows: list[dict[str, Any]]) -> str:
    """Flat CSV (`flat_table`)."""
    columns, flat = flat_table(rows)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows(flat)
    return out.getvalue()


def _csv_row(row: dict[str, Any], value_cols: list[str]) -> dict[str, Any]:
    flat = {k: row[k] for k in CSV_FIXED if k in row}
    for column in ("metrics", "intermediate_values"):
        flat[column] = json.dumps(row[column], sort_keys=True, separators=(",", ":"))
    for column, value in zip(value_cols, row["values"] or [], strict=False):
        flat[column] = value
    flat.update({f"params.{k}": v for k, v in row["params"].items()})
    return flat
