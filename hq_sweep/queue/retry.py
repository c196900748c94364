"""Riding out a Redis restart: retry an operation with exponential backoff, for a while."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from hq_sweep.errors import RedisUnavailable

T = TypeVar("T")
log = logging.getLogger("hq_sweep")

def patiently(call: Callable[[], T], what: str, patience_s: float = 300.0,
              first_delay_s: float = 0.1, max_delay_s: float = 5.0) -> T:
    """`call()`, retried while Redis is unreachable, for up to `patience_s` seconds.

    Only for operations that are safe to repeat: hq-sweep's state changes are fenced Lua
    scripts, so a retry after a lost reply is rejected rather than applied twice.
    """
    deadline = time.monotonic() + patience_s
    delay = first_delay_s
    while True:
        try:
            return call()
        except RedisUnavailable as exc:
            if time.monotonic() + delay > deadline:
                raise
            log.warning("%s: Redis unreachable (%s); retrying in %.1f s", what, exc, delay)
            time.sleep(delay)
            delay = min(delay * 2, max_delay_s)
