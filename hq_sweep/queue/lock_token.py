"""Whose controller holds a sweep: the lock token names its host and process.

Tokens read ``HOST:PID:UNIQUE``; the unique part keeps two controllers in one process (tests,
`hq-sweep run`'s thread) apart. Older tokens without host and pid still work as tokens.
"""

from __future__ import annotations

import os
import socket


def controller_token(unique: str) -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{unique}"


def holds(token: str | None, pid: int) -> bool:
    """Whether `token` is the lock token of process `pid` on this host."""
    return token is not None and token.startswith(f"{socket.gethostname()}:{pid}:")


def describe_holder(token: str | None) -> str | None:
    """'HOST pid N' for a lock token, None when no controller holds the sweep."""
    if token is None:
        return None
    parts = token.rsplit(":", 2)
    if len(parts) == 3 and parts[1].isdigit():
        return f"{parts[0]} pid {parts[1]}"
    return f"token {token}"


def missing_controller(sweep_id: str, holder: str | None, state: str | None) -> str | None:
    """The warning for a running (or stopping) sweep that no controller holds, None when
    there is none."""
    if holder is not None or state not in ("running", "stopping"):
        return None
    if state == "stopping":
        return (f"no controller holds this stopping sweep: it ends when "
                f"`hq-sweep controller {sweep_id}` runs, or when `hq-sweep stop {sweep_id}` "
                f"is run again once its running trials have ended")
    return (f"no controller holds this sweep: no new trials until "
            f"`hq-sweep controller {sweep_id}` runs")
