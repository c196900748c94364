"""Local launcher: N supervised worker processes, with the env a Slurm task would get.

Workers learn where the Redis server is from their environment: the path of a 0600 file
holding the URL (a `ServerHandoff`), never the URL itself nor anything on the command line,
so the password shows neither in `ps` nor in /proc/PID/environ. Whether and when a worker is
started again is the shared policy's (`hq_sweep.launchers.slots`); this module only runs the
processes and their log files.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from hq_sweep.env import local_worker_env
from hq_sweep.exitcodes import describe
from hq_sweep.launchers._base import (
    STOPPING_SIGNALS,
    ServerHandoff,
    log_event,
    supervise,
    worker_command,
    worker_env,
)
from hq_sweep.launchers.slots import (
    Action,
    CrashPolicy,
    Decision,
    Slots,
    exit_reason,
    gave_up_text,
)

__all__ = ["LocalLauncher", "worker_command"]

# How long wait() blocks between supervision passes: short enough that a crash is noticed
# and a due restart happens promptly, long enough not to spin.
_TICK_S = 0.05


@dataclass
class LocalLauncher:
    """Starts a fixed set of local worker processes and keeps them running."""

    count: int
    server: ServerHandoff
    sweep_id: str | None
    log_dir: Path | None = None  # None: workers share this process's stdout/stderr
    extra_args: Sequence[str] = ()
    command: Sequence[str] | None = None  # overrides worker_command() (tests: a fake worker)
    on_event: Callable[[str], None] = log_event
    max_crashes: int = 5
    crash_window_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    _slots: Slots = field(default_factory=Slots, init=False, repr=False)
    _procs: list[subprocess.Popen[bytes]] = field(default_factory=list, init=False, repr=False)
    _logs: list[IO[bytes] | None] = field(default_factory=list, init=False, repr=False)

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        """The current (latest) process of each slot, by rank."""
        return list(self._procs)

    def start(self) -> None:
        if self._procs:
            raise RuntimeError("launcher already started")
        self._slots = Slots(CrashPolicy(self.max_crashes, self.crash_window_s,
                                        self.backoff_initial_s, self.backoff_max_s))
        try:
            for rank in range(self.count):
                log = self._open_log(rank)
                self._logs.append(log)
                self._procs.append(self._popen(rank, log))
                self._slots.add(time.monotonic())
        except BaseException:
            self.stop(grace_s=0.0)  # don't orphan the workers started before the failure
            raise

    def describe(self) -> str:
        pids = ", ".join(str(p.pid) for p in self._procs)
        return f"{self.count} workers (pids {pids}); {self.output_note()}"

    def output_note(self) -> str:
        """Where the workers' output goes, for "started ..." lines."""
        if self.log_dir is None:
            return "worker output on this command's stdout/stderr"
        return f"worker logs in {self.log_dir.resolve()}/"

    def poll(self) -> None:
        """One supervision pass: reap exits, decide, restart slots whose backoff is over."""
        for slot in self._slots:
            if slot.finished:
                continue
            now = time.monotonic()
            if slot.waiting:
                if slot.due(now):
                    self._respawn(slot.rank)
                continue
            code = self._procs[slot.rank].poll()
            if code is not None:
                self._exited(slot.rank, code, now)

    def alive(self) -> int:
        return sum(1 for p in self._procs if p.poll() is None)

    def active(self) -> bool:
        """Some slot has a live worker or may still get one (a pending restart)."""
        return self._slots.open() or self.alive() > 0

    def wait(self, timeout_s: float | None) -> bool:
        """Supervise until no slot is active (None: however long); True if that happened."""
        if supervise(self.poll, self.active, self._nap, _TICK_S, timeout_s):
            self.server.close()
            return True
        return False

    def signal_all(self, sig: int) -> None:
        """Forward `sig` to every live worker; a stopping signal also ends all restarts."""
        if sig in STOPPING_SIGNALS:
            self._drain()
        for process in self._procs:
            if process.poll() is None:
                process.send_signal(sig)

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM every live worker, SIGKILL those still there after `grace_s`; no restarts."""
        self._slots.finish_all()
        for rank in range(len(self._logs)):
            self._close_log(rank)  # the children keep their own copy of the log fd
        live = [p for p in self._procs if p.poll() is None]
        for process in live:
            process.terminate()
        if not _reap(live, grace_s):
            for process in live:
                if process.poll() is None:
                    process.kill()
            _reap(live, 5.0)
        self.server.close()

    def exit_codes(self) -> list[int | None]:
        """Each slot's latest exit code (None: its current worker is still running)."""
        return [p.poll() for p in self._procs]

    def gave_up(self) -> list[int]:
        """Ranks of the slots abandoned as crash-looping."""
        return self._slots.gave_up()

    def _drain(self) -> None:
        """No more restarts: every exit from now on ends its slot (pending ones end now)."""
        for slot in self._slots.drain():
            self._close_log(slot.rank)

    def _exited(self, rank: int, code: int, now: float) -> None:
        decision = self._slots.exited(rank, code, now)
        if decision.action is Action.FINISH:
            self._close_log(rank)
        elif decision.action is Action.REPLACE:
            # Healthy hand-over (trial count, memory, hung trial): no backoff, no crash.
            self._event(rank, f"worker {rank} {describe(code)}; starting a fresh one")
            self._respawn(rank)
        else:
            who = f"worker {rank} (pid {self._procs[rank].pid})"
            self._crash_event(rank, who, exit_reason(code), decision)

    def _crash_event(self, rank: int, who: str, reason: str, decision: Decision) -> None:
        """Report a RESTART or GIVE_UP decision (a given-up slot's log is closed after)."""
        if decision.action is Action.RESTART:
            self._event(rank, f"{who} {reason}; restarting in {decision.delay_s:g} s")
            return
        log = self._logs[rank]
        where = f" — log: {log.name}" if log is not None else ""
        self._event(rank, gave_up_text(rank, decision, self._slots.policy, reason) + where)
        self._close_log(rank)

    def _respawn(self, rank: int) -> None:
        slot = self._slots[rank]
        try:
            self._procs[rank] = self._popen(rank, self._logs[rank])
        except OSError as exc:  # e.g. fork failed under memory pressure: retry with backoff
            decision = slot.crashed(time.monotonic())
            self._crash_event(rank, f"worker {rank}", f"could not start ({exc})", decision)
            return
        slot.started(time.monotonic())

    def _close_log(self, rank: int) -> None:
        log = self._logs[rank]
        if log is not None and not log.closed:
            log.close()

    def _event(self, rank: int, message: str) -> None:
        # Also into the slot's log, so that reading it alone explains the restarts in it.
        log = self._logs[rank]
        if log is not None and not log.closed:
            log.write(f"[hq-sweep launcher] {message}\n".encode())
            log.flush()
        self.on_event(message)

    def _open_log(self, rank: int) -> IO[bytes] | None:
        if self.log_dir is None:
            return None
        # Private (0700/0600): a worker's log holds what its trials print.
        self.log_dir.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.log_dir.mkdir(mode=0o700, exist_ok=True)
        # Append: restarted workers (and reruns of the sweep) add to the same file.
        path = self.log_dir / f"worker-{rank}.log"
        return open(path, "ab", opener=lambda name, flags: os.open(name, flags, 0o600))

    def _popen(self, rank: int, log: IO[bytes] | None) -> subprocess.Popen[bytes]:
        env = worker_env(os.environ, self.server, local_worker_env(rank, self.count))
        command = self.command or worker_command(self.sweep_id, self.extra_args)
        return subprocess.Popen(
            list(command),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT if log is not None else None,
        )

    def _nap(self, seconds: float) -> None:
        """Block up to `seconds`, returning early when a worker exits or a restart is due."""
        due = self._slots.next_due()
        if due is not None:
            seconds = min(seconds, max(0.0, due - time.monotonic()))
        live = [p for p in self._procs if p.poll() is None]
        if not live:
            time.sleep(seconds)  # only restarts pending: no child to wait on
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            live[0].wait(seconds)  # waitpid-based; other slots are seen on the next tick


def _reap(processes: Sequence[subprocess.Popen[bytes]], timeout_s: float) -> bool:
    """Wait for `processes` to exit; True if they all did within `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    for process in processes:
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
    return True
