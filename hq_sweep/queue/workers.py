"""The workers serving a sweep, as their heartbeats announce them."""

from __future__ import annotations

import time
from typing import Any

from hq_sweep.messages import MessageError, dumps, loads_object
from hq_sweep.queue.client import Client
from hq_sweep.queue.keys import SweepKeys

DEPARTED_KEPT_S = 120.0  # how long a worker that left stays listed, with why


class WorkerRoster:
    """Heartbeats: who serves the sweep, and when each was last seen."""

    def __init__(self, connection: Client, keys: SweepKeys) -> None:
        self.connection = connection
        self.key = keys.part("workers")

    def heartbeat(self, worker: str, info: dict[str, Any]) -> None:
        self.connection.hset(self.key, worker, dumps({**info, "seen": time.time()}))

    def forget(self, worker: str) -> None:
        self.connection.hdel(self.key, worker)

    def depart(self, worker: str, info: dict[str, Any], reason: str,
               keep_s: float = DEPARTED_KEPT_S) -> None:
        """The worker leaves, saying why (the monitor shows it a while); those that left
        longer than `keep_s` ago are dropped, so recycled workers do not pile up."""
        now = time.time()
        gone = [name for name, beat in self.all().items()
                if beat.get("left") and now - _seen(beat) > keep_s]
        pipe = self.connection.pipeline(transaction=False)
        if gone:
            pipe.hdel(self.key, *gone)
        pipe.hset(self.key, worker, dumps({**info, "trial": None, "left": reason, "seen": now}))
        pipe.execute()

    def all(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for name, raw in self.connection.hgetall(self.key).items():
            try:  # someone else's garbage is no worker: skipped (beats are rewritten anyway)
                beat = loads_object(raw, "worker heartbeat")
                if _number(beat.get("seen")):
                    found[name.decode() if isinstance(name, bytes) else name] = beat
            except (MessageError, UnicodeDecodeError):
                continue
        return found

    def live(self, within_s: float) -> int:
        return len(live_beats(self.all(), within_s))


def live_beats(beats: dict[str, dict[str, Any]], within_s: float) -> dict[str, dict[str, Any]]:
    """The heartbeats seen within the last `within_s` seconds, of workers still there."""
    cutoff = time.time() - within_s
    return {name: info for name, info in beats.items()
            if _seen(info) >= cutoff and not info.get("left")}


def _seen(beat: dict[str, Any]) -> float:
    try:
        return float(beat.get("seen", 0))
    except (TypeError, ValueError):
        return 0.0


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
