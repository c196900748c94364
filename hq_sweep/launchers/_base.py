"""What every launcher is (the `Launcher` Protocol) and what they all share to be one.

The CLI drives any launcher the same way: start(), print "started " + describe(), forward the
signals it gets through signal_all(), wait(None), then read exit_codes() (and gave_up()); a
KeyboardInterrupt becomes stop().
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from hq_sweep.env import without_server_vars
from hq_sweep.errors import HqSweepError

# The Redis URL holds a password: no launcher sets it for a worker (nor passes it in argv);
# workers get the path of the file that holds it, from a ServerHandoff.
# Once one of these has been forwarded the workers are being asked to leave (SIGUSR1: Slurm's
# walltime warning): a launcher drains, i.e. it restarts nothing after that.
STOPPING_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGUSR1})


class LauncherError(HqSweepError):
    """A launcher cannot run here (a package, a server or an allocation is missing)."""


class ServerHandoff(Protocol):
    """How workers find the Redis server without its secret (`server.handoff.Handoff`)."""

    @property
    def env(self) -> Mapping[str, str]:
        """Variables for a worker's environment: the path of a 0600 file with the URL."""

    def close(self) -> None:
        """No worker will start again: remove what only the workers needed."""


def worker_env(base: Mapping[str, str], server: ServerHandoff,
               extra: Mapping[str, str]) -> dict[str, str]:
    """A worker's environment: `base` without any route to the secret (a URL the user
    exported for hq-sweep's own CLI included), the handoff's file, then `extra`."""
    return {**without_server_vars(base), **server.env, **extra}


@runtime_checkable
class Launcher(Protocol):
    """Starts a fixed set of warm workers (ranks 0..N-1) and supervises them to the end."""

    def start(self) -> None:
        """Start every worker; on failure, none is left behind."""

    def wait(self, timeout_s: float | None) -> bool:
        """Supervise until no worker is left or due (True) or `timeout_s` passes (False)."""

    def stop(self, grace_s: float = 10.0) -> None:
        """Ask every worker to leave, give them `grace_s`, restart none of them."""

    def exit_codes(self) -> list[int | None]:
        """Each rank's latest exit code (None: its worker is not over)."""

    def gave_up(self) -> list[int]:
        """Ranks abandoned as crash-looping."""

    def signal_all(self, sig: int) -> None:
        """Pass `sig` on to every worker; a stopping signal also ends all restarts.

        Called from a signal handler: it must not block.
        """

    def describe(self) -> str:
        """One line for "started ...": how many workers, and where."""


def worker_command(sweep_id: str | None, extra: Sequence[str] = ()) -> list[str]:
    """The argv of one warm worker (where the server is travels in its environment)."""
    command = [sys.executable, "-m", "hq_sweep", "worker"]
    if sweep_id is not None:
        command += ["--sweep", sweep_id]
    return [*command, *extra]


def log_event(message: str) -> None:
    """The default `on_event` of the launchers: restarts and give-ups, as warnings."""
    logging.getLogger("hq_sweep.launcher").warning("%s", message)


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
