"""Malformed data found in a sweep's keys: set aside for a look, counted, never a crash.

Every reader that meets something it cannot use (a message that does not decode, an outcome
its trial's record contradicts, a record that does not read, an rq job that is not one of
ours) puts it here: `hqs:s:{id}:quarantine` keeps the newest `QUARANTINE_KEPT` entries
(where it was found, why it was refused, the raw bytes truncated), `hqs:s:{id}:quarantined`
counts them all; `hq-sweep status` shows the count.
"""

from __future__ import annotations

import contextlib
import logging
import time

from hq_sweep.errors import TransportError
from hq_sweep.limits import QUARANTINE_KEPT, QUARANTINE_RAW_CHARS
from hq_sweep.messages import dumps
from hq_sweep.queue.client import Client
from hq_sweep.queue.keys import SweepKeys

log = logging.getLogger("hq_sweep.quarantine")
_LOG_EVERY_S = 1.0  # a flood of garbage logs a line a second, with how many it stands for


def printable(raw: bytes | str, limit: int = QUARANTINE_RAW_CHARS) -> str:
    """Raw bytes as text for a log line or an entry: truncated, undecodable bytes replaced."""
    shown = raw[: limit * 4]  # enough bytes for `limit` characters of UTF-8
    return (shown.decode(errors="replace") if isinstance(shown, bytes) else shown)[:limit]


class Quarantine:
    """One sweep's quarantine: `put` what does not read, `count` how much did not."""

    def __init__(self, connection: Client, keys: SweepKeys) -> None:
        self.connection = connection
        self.sweep_id = keys.sweep_id
        self.list_key = keys.part("quarantine")
        self.count_key = keys.part("quarantined")
        self._logged_at = -_LOG_EVERY_S
        self._unlogged = 0

    def put(self, where: str, raw: bytes | str, reason: str) -> None:
        """Set `raw` (found in `where`) aside, saying why; losing the copy must not stop the
        sweep, so a Redis error here is swallowed (the caller has skipped the item already)."""
        self._log(where, reason)
        entry = dumps({"where": where, "error": reason[:QUARANTINE_RAW_CHARS],
                       "raw": printable(raw), "at": round(time.time(), 3)})
        with contextlib.suppress(TransportError):
            pipe = self.connection.pipeline(transaction=False)
            pipe.rpush(self.list_key, entry)
            pipe.ltrim(self.list_key, -QUARANTINE_KEPT, -1)
            pipe.incr(self.count_key)
            pipe.execute()

    def count(self) -> int:
        """How many items were quarantined (older sweeps kept only the list: its length)."""
        raw = self.connection.get(self.count_key)
        try:
            return int(raw) if raw is not None else int(self.connection.llen(self.list_key))
        except (TypeError, ValueError):
            return int(self.connection.llen(self.list_key))

    def _log(self, where: str, reason: str) -> None:
        now = time.monotonic()
        if now - self._logged_at < _LOG_EVERY_S:
            self._unlogged += 1
            return
        more = f" (+{self._unlogged} more since the last line)" if self._unlogged else ""
        log.warning("sweep %s: quarantined from %s: %s%s", self.sweep_id, where,
                    printable(reason, 300).replace("\n", " "), more)
        self._logged_at, self._unlogged = now, 0
