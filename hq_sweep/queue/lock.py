"""The controller lock: one controller per sweep, holding a lease it keeps renewing."""

from __future__ import annotations

from hq_sweep.queue.client import Client, text
from hq_sweep.queue.keys import SweepKeys
from hq_sweep.queue.scripts import script


class ControllerLock:
    """The sweep's lock; tokens come from `lock_token.controller_token`."""

    def __init__(self, connection: Client, keys: SweepKeys) -> None:
        self.connection = connection
        self.key = keys.part("lock")

    def acquire(self, token: str, lease_ms: int) -> bool:
        return bool(self.connection.set(self.key, token, nx=True, px=lease_ms))

    def holder(self) -> str | None:
        return text(self.connection.get(self.key))

    def renew(self, token: str, lease_ms: int) -> bool:
        return bool(script("lock_renew").run(self.connection, [self.key], [token, lease_ms]))

    def release(self, token: str) -> None:
        script("lock_release").run(self.connection, [self.key], [token])
