"""The workers serving a sweep, as their heartbeats announce them."""

from __future__ import annotations

import time
from typing import Any

from hq_sweep.messages import MessageError, dumps, loads_object
from hq_sweep.queue.client import Client, text
from hq_sweep.queue.keys import SweepKeys


class WorkerRoster:
    """Heartbeats: who serves the sweep, and when each was last seen."""

    def __init__(self, connection: Client, keys: SweepKeys) -> None:
        self.connection = connection
        self.key = keys.part("workers")

    def heartbeat(self, worker: str, info: dict[str, Any]) -> None:
        self.connection.hset(self.key, worker, dumps({**info, "seen": time.time()}))

    def forget(self, worker: str) -> None:
        self.connection.hdel(self.key, worker)

    def all(self) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        for name, raw in self.connection.hgetall(self.key).items():
            try:
                found[text(name) or ""] = loads_object(raw, "worker heartbeat")
            except MessageError:
                continue
        return found

    def live(self, within_s: float) -> int:
        return len(live_beats(self.all(), within_s))


def live_beats(beats: dict[str, dict[str, Any]], within_s: float) -> dict[str, dict[str, Any]]:
    """The heartbeats seen within the last `within_s` seconds."""
    cutoff = time.time() - within_s
    return {name: info for name, info in beats.items() if float(info.get("seen", 0)) >= cutoff}
