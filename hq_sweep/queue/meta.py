"""A sweep's own record: its spec and state, the kept counters, the best trial so far."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from hq_sweep.messages import dumps
from hq_sweep.queue.client import Client
from hq_sweep.queue.keys import SweepKeys
from hq_sweep.queue.quarantine import Quarantine

_V = TypeVar("_V")

BEST_POINTS = 500


class SweepMeta:
    """The sweep's meta hash and the counters kept beside it (read without a scan)."""

    def __init__(self, connection: Client, keys: SweepKeys,
                 quarantine: Quarantine | None = None) -> None:
        self.connection = connection
        self.keys = keys
        self.key = keys.meta
        self.quarantine = quarantine or Quarantine(connection, keys)

    def read(self) -> dict[str, str]:
        return readable(self.connection.hgetall(self.key), str)

    def state(self) -> str | None:
        raw = self.connection.hget(self.key, "state")
        return raw.decode(errors="replace") if isinstance(raw, bytes) else raw

    def set_finished(self, reason: str) -> None:
        self.connection.hset(self.key, mapping={"state": "finished", "finished_reason": reason,
                                                "finished_at": round(time.time(), 3)})

    def set_running(self) -> None:
        """Running (again: a resumed sweep forgets an earlier user stop)."""
        self.connection.hset(self.key, "state", "running")
        self.connection.hdel(self.key, "stop")

    def replace_spec(self, spec_json: str, spec_hash: str) -> None:
        """A resumed sweep's new spec (only its run_cap may differ: the caller checks)."""
        self.connection.hset(self.key, mapping={"spec": spec_json, "spec_hash": spec_hash})

    def set_stalled(self, reason: str) -> None:
        """A worker could not start (its import or setup() failed): why, for status/monitor."""
        self.connection.hset(self.key, "stalled", reason)

    def clear_stalled(self) -> None:
        """A worker started: whatever stalled the sweep is fixed."""
        self.connection.hdel(self.key, "stalled")

    def set_told(self, told: int, study_trials: int | None = None,
                 mean_trial_s: float | None = None) -> None:
        """How many outcomes the controller's study holds (at the end, how many trials), and
        the mean run time of recent trials (for the monitor)."""
        fields: dict[str, str | int] = {"told": told}
        if study_trials is not None:
            fields["study_trials"] = study_trials
        if mean_trial_s is not None:
            fields["mean_trial_s"] = f"{mean_trial_s:.6g}"
        self.connection.hset(self.key, mapping=fields)  # type: ignore[arg-type]

    def set_best(self, best: dict[str, Any] | list[dict[str, Any]]) -> None:
        self.connection.hset(self.key, "best", dumps(best))

    def add_best_point(self, number: int, value: float) -> None:
        """A new best: the monitor draws best-so-far from these (improvements are few: the
        list stays short; the newest BEST_POINTS are kept)."""
        key = self.keys.part("best_history")
        pipe = self.connection.pipeline(transaction=False)
        pipe.rpush(key, dumps([number, value]))
        pipe.ltrim(key, -BEST_POINTS, -1)
        pipe.execute()

    def best_points(self) -> list[tuple[int, float]]:
        """(trial number, value) of each new best, oldest first."""
        points = []
        for raw in self.connection.lrange(self.keys.part("best_history"), 0, -1):
            try:
                number, value = json.loads(raw)
                points.append((int(number), float(value)))
            except (ValueError, TypeError):
                continue
        return points

    def counts(self) -> dict[str, int]:
        return readable(self.connection.hgetall(self.keys.part("counts")), int)

    def failure_kinds(self) -> dict[str, int]:
        return readable(self.connection.hgetall(self.keys.part("reasons")), int)

    def failure_lines(self) -> dict[str, str]:
        """Failure kind -> the latest failure of that kind in one line."""
        return readable(self.connection.hgetall(self.keys.part("failure_lines")), str)

    def cost_totals(self) -> dict[str, float]:
        """Running cost totals (finish.lua): trial_s, gpu_s, rss_peak_mb, gpu_mem_peak_mb."""
        return readable(self.connection.hgetall(self.keys.part("cost")), float)

    def quarantined(self) -> int:
        """How many malformed items readers set aside (`queue.quarantine`)."""
        return self.quarantine.count()


def readable(raw: Mapping[Any, Any], convert: Callable[[str], _V]) -> dict[str, _V]:
    """A hash as text keys and `convert`ed values; a field that does not read (someone
    else's garbage: binary, or not a number) is left out rather than crash the reader."""
    found: dict[str, _V] = {}
    for key, value in raw.items():
        try:
            found[key.decode(errors="replace")] = convert(value.decode())
        except (ValueError, UnicodeDecodeError, AttributeError):
            continue
    return found


def decode_best(raw: str | None) -> dict[str, Any] | None:
    """The best trial as `set_best` wrote it ({number, value, params}); None when there is
    none, or when the field holds anything else (someone else's garbage must not end a
    monitor: the controller writes it again at the next new best)."""
    try:
        found = json.loads(raw) if raw else None
    except (ValueError, RecursionError):
        return None
    if not isinstance(found, dict):
        return None
    number, value = found.get("number"), found.get("value")
    if type(number) is not int or type(value) not in (int, float):
        return None
    return found if isinstance(found.get("params"), dict) else None
