"""`enqueue --detach`: start the controller in the background and return once it holds the sweep.

Returning as soon as the process is forked would leave a window in which a second controller
(a standby, a resumed `enqueue`) could take the sweep first, and a controller that dies at start
(bad Redis password, unreadable sweep) would look like it was running.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from hq_sweep.env import without_server_vars
from hq_sweep.errors import HqSweepError
from hq_sweep.queue.lock_token import holds
from hq_sweep.queue.sweep import SweepQueue

POLL_S = 0.05
LOG_TAIL_LINES = 15


@dataclass(frozen=True)
class Detached:
    pid: int
    log: Path
    standing_by: bool  # another controller holds the sweep; this one takes over when it stops


def spawn_controller(
    queue: SweepQueue, url_env: dict[str, str], lock_lease: float, logs: Path, timeout_s: float
) -> Detached:
    """Start `hq-sweep controller` in its own session, told where the server is by `url_env`
    (a file's path: `server.handoff`), with its output in `logs/controller.log`."""
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / "controller.log"
    with open(log_path, "ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "hq_sweep", "controller", queue.sweep_id,
             "--lock-lease", str(lock_lease)],
            # `url_env` names the file with the URL; no URL of ours is inherited.
            env={**without_server_vars(os.environ), **url_env},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    # Batch scripts stop the controller they started when their job ends: they read this.
    (logs / "controller.pid").write_text(f"{process.pid}\n")
    standing_by = _await_lock(queue, process, log_path, timeout_s)
    return Detached(process.pid, log_path, standing_by)


def _await_lock(
    queue: SweepQueue, process: subprocess.Popen[bytes], log_path: Path, timeout_s: float
) -> bool:
    """Wait until the new controller holds the sweep (False) or another one does (True)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        holder = queue.lock.holder()
        if holds(holder, process.pid):
            return False
        if process.poll() is not None:
            return _exited(process, log_path)
        if holder is not None:
            return True
        time.sleep(POLL_S)
    raise HqSweepError(
        f"the controller (pid {process.pid}) has not taken sweep {queue.sweep_id!r} after "
        f"{timeout_s:.0f} s; it is still running, see {log_path}"
    )


def _exited(process: subprocess.Popen[bytes], log_path: Path) -> bool:
    # A finished sweep's controller takes the lock, sees nothing to do and leaves at once.
    if process.returncode == 0:
        return False
    tail = log_path.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
    raise HqSweepError(
        f"the controller exited with code {process.returncode} before taking the sweep "
        f"(log {log_path}):\n" + "\n".join(tail)
    )
