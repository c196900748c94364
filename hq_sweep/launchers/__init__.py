"""Launchers start warm workers: local processes, srun steps in a Slurm allocation, or
HyperQueue tasks. They share one supervision loop."""

from __future__ import annotations

import time
from collections.abc import Callable


def supervise(poll: Callable[[], None], active: Callable[[], bool],
              nap: Callable[[float], None], tick_s: float, timeout_s: float | None) -> bool:
    """Call `poll()` until `active()` is false (True) or `timeout_s` passes (False).

    `nap(seconds)` waits between passes; a launcher that can block on its workers' exits
    passes a wait that returns early when one exits.
    """
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        poll()
        if not active():
            return True
        pause = tick_s
        if deadline is not None:
            if time.monotonic() >= deadline:
                return False
            pause = min(pause, deadline - time.monotonic())
        nap(max(0.0, pause))
