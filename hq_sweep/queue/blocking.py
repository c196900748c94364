"""A BLPOP with a deadline of our own, for the waits a trial makes on the controller (a prune
decision, a define-by-run answer).

Redis times blocking commands out on its own clock tick (100 ms at the default hz), far too
coarse for a budget of milliseconds: the deadline is kept here, and a wait that runs out drops
its connection, which ends the BLPOP on the server too. So does a wait interrupted by an
alarm or a signal: its BLPOP may still answer, and the next user of the link must not read it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import redis

from hq_sweep.queue.client import Client, translate

T = TypeVar("T")
_BACKSTOP_S = 1  # the server-side limit of one BLPOP (the real deadline is ours)


def pop_within(connection: Client, key: str, timeout_s: float,
               accept: Callable[[bytes], T | None]) -> T | None:
    """Pop items off `key` until `accept(item)` gives something (returned) or `timeout_s`
    passes (None). Items `accept` turns down are dropped."""
    deadline = time.monotonic() + timeout_s
    pool = connection.connection_pool
    try:
        link = pool.get_connection()
    except redis.exceptions.RedisError as exc:
        raise translate(exc) from exc
    try:
        while (left := deadline - time.monotonic()) > 0:
            link.send_command("BLPOP", key, _BACKSTOP_S)
            if not link.can_read(timeout=left):
                link.disconnect()
                return None
            popped = link.read_response()
            if popped and (found := accept(bytes(popped[1]))) is not None:
                return found
        return None
    except redis.exceptions.RedisError as exc:
        raise translate(exc) from exc
    except BaseException:
        link.disconnect()
        raise
    finally:
        pool.release(link)
