"""The sweeps a server knows: creating them under a free id, and listing them."""

from __future__ import annotations

import time

from hq_sweep.errors import HqSweepError
from hq_sweep.queue.client import Client, text
from hq_sweep.queue.keys import SWEEPS, SweepKeys
from hq_sweep.queue.scripts import script


class SweepRegistry:
    """Sweeps known to a server: creation and listing."""

    def __init__(self, connection: Client) -> None:
        self.connection = connection

    def create(self, base_id: str, spec_json: str, spec_hash: str, base_dir: str) -> str:
        """Register a new sweep under `base_id`, or `base_id-2`, `-3`... if taken."""
        create = script("create_sweep")
        for suffix in range(1, 10_000):
            sweep_id = base_id if suffix == 1 else f"{base_id}-{suffix}"
            keys = [SweepKeys(sweep_id).meta, SWEEPS]
            args = [sweep_id, spec_json, spec_hash, time.time(), base_dir]
            if create.run(self.connection, keys, args):
                return sweep_id
        raise HqSweepError(f"no free sweep id for {base_id!r}")

    def exists(self, sweep_id: str) -> bool:
        return bool(self.connection.exists(SweepKeys(sweep_id).meta))

    def list(self) -> list[str]:
        members: list[bytes] = self.connection.zrange(SWEEPS, 0, -1)  # type: ignore[assignment]
        return [text(raw) or "" for raw in members]

    def latest(self) -> str | None:
        newest: list[bytes] = self.connection.zrange(SWEEPS, -1, -1)  # type: ignore[assignment]
        return text(newest[0]) if newest else None
