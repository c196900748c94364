"""Local launcher: N supervised worker processes, with the env a Slurm task would get.

The Redis URL (with its password) travels in the environment, never on the command line,
so it does not show in `ps`.

Supervision follows the worker's exit code (`hq_sweep.exitcodes`): a deliberate stop ends
its slot; RECYCLE/HUNG are healthy hand-overs, replaced at once; anything else (an error,
an unknown code, a signal) is a crash, restarted after a per-slot backoff, and a slot that
crashes `max_crashes` times within `crash_window_s` is given up so it cannot spin forever.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from hq_sweep.env import local_worker_env
from hq_sweep.exitcodes import NO_RESTART, REPLACE, describe
from hq_sweep.launchers import supervise

REDIS_URL_VAR = "HQ_SWEEP_REDIS_URL"
# How long wait() blocks between supervision passes: short enough that a crash is noticed
# and a due restart happens promptly, long enough not to spin.
_TICK_S = 0.05
# Once one of these has been forwarded the workers are being asked to leave: restarting a
# slot afterwards would start a worker nobody wants and keep wait() from returning.
_STOPPING_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGUSR1})


def worker_command(sweep_id: str | None, extra: Sequence[str] = ()) -> list[str]:
    command = [sys.executable, "-m", "hq_sweep", "worker"]
    if sweep_id is not None:
        command += ["--sweep", sweep_id]
    return [*command, *extra]


def _log_event(message: str) -> None:
    logging.getLogger("hq_sweep.launcher").warning("%s", message)


def _reason(code: int) -> str:
    """describe() names known codes; keep the number beside the name so logs can be grepped."""
    text = describe(code)
    return text if code < 0 or text == f"exit code {code}" else f"exit code {code} ({text})"


@dataclass
class _Slot:
    """One worker position (rank): its current process and its crash history."""

    rank: int
    process: subprocess.Popen[bytes]
    log: IO[bytes] | None
    backoff_s: float
    started_at: float = field(default_factory=time.monotonic)
    crashes: deque[float] = field(default_factory=deque)
    restart_at: float | None = None  # set while waiting out a backoff
    finished: bool = False  # no more restarts: deliberate exit, given up or stopped
    gave_up: bool = False


@dataclass
class LocalLauncher:
    """Starts a fixed set of local worker processes and keeps them running."""

    count: int
    redis_url: str
    sweep_id: str | None
    log_dir: Path | None = None  # None: workers share this process's stdout/stderr
    extra_args: Sequence[str] = ()
    command: Sequence[str] | None = None  # overrides worker_command() (tests: a fake worker)
    on_event: Callable[[str], None] = _log_event
    max_crashes: int = 5
    crash_window_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    _slots: list[_Slot] = field(default_factory=list, init=False, repr=False)
    _draining: bool = field(default=False, init=False, repr=False)

    @property
    def processes(self) -> list[subprocess.Popen[bytes]]:
        """The current (latest) process of each slot, by rank."""
        return [slot.process for slot in self._slots]

    def start(self) -> None:
        if self._slots:
            raise RuntimeError("launcher already started")
        try:
            for rank in range(self.count):
                log = self._open_log(rank)
                process = self._popen(rank, log)
                self._slots.append(_Slot(rank, process, log, self.backoff_initial_s))
        except BaseException:
            self.stop(grace_s=0.0)  # don't orphan the workers started before the failure
            raise

    def poll(self) -> None:
        """One supervision pass: reap exits, decide, restart slots whose backoff is over."""
        for slot in self._slots:
            if slot.finished:
                continue
            now = time.monotonic()
            if slot.restart_at is not None:
                if now >= slot.restart_at:
                    self._respawn(slot)
                continue
            code = slot.process.poll()
            if code is not None:
                self._exited(slot, code, now)

    def alive(self) -> int:
        return sum(1 for p in self.processes if p.poll() is None)

    def active(self) -> bool:
        """Some slot has a live worker or may still get one (a pending restart)."""
        return any(not slot.finished or slot.process.poll() is None for slot in self._slots)

    def wait(self, timeout_s: float | None) -> bool:
        """Supervise until no slot is active (None: however long); True if that happened."""
        return supervise(self.poll, self.active, self._nap, _TICK_S, timeout_s)

    def signal_all(self, sig: int) -> None:
        """Forward `sig` to every live worker; a stopping signal also ends all restarts."""
        if sig in _STOPPING_SIGNALS:
            self._draining = True
            for slot in self._slots:
                if slot.restart_at is not None:
                    self._finish(slot)
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(sig)

    def stop(self, grace_s: float = 10.0) -> None:
        """SIGTERM every live worker, SIGKILL those still there after `grace_s`; no restarts."""
        self._draining = True
        for slot in self._slots:
            self._finish(slot)  # the children keep their own copy of the log fd
        live = [p for p in self.processes if p.poll() is None]
        for process in live:
            process.terminate()
        if not _reap(live, grace_s):
            for process in live:
                if process.poll() is None:
                    process.kill()
            _reap(live, 5.0)

    def exit_codes(self) -> list[int | None]:
        """Each slot's latest exit code (None: its current worker is still running)."""
        return [p.poll() for p in self.processes]

    def gave_up(self) -> list[int]:
        """Ranks of the slots abandoned as crash-looping."""
        return [slot.rank for slot in self._slots if slot.gave_up]

    def _exited(self, slot: _Slot, code: int, now: float) -> None:
        if self._draining or code in NO_RESTART:
            self._finish(slot)
            return
        if now - slot.started_at >= self.crash_window_s:
            slot.backoff_s = self.backoff_initial_s  # a long healthy run forgives old crashes
        if code in REPLACE:
            # Healthy hand-over (trial count, memory, hung trial): no backoff, no crash.
            self._event(slot, f"worker {slot.rank} {describe(code)}; starting a fresh one")
            self._respawn(slot)
            return
        self._crashed(slot, f"worker {slot.rank} (pid {slot.process.pid})", _reason(code), now)

    def _crashed(self, slot: _Slot, who: str, reason: str, now: float) -> None:
        slot.crashes.append(now)
        while now - slot.crashes[0] > self.crash_window_s:
            slot.crashes.popleft()
        if len(slot.crashes) >= self.max_crashes:
            slot.gave_up = True
            where = f" — log: {slot.log.name}" if slot.log is not None else ""
            self._event(
                slot,
                f"worker {slot.rank} crash-loops ({len(slot.crashes)} crashes in "
                f"{self.crash_window_s:g} s, last: {reason}); giving up on it{where}",
            )
            self._finish(slot)
            return
        delay = slot.backoff_s
        slot.backoff_s = min(delay * 2, self.backoff_max_s)
        slot.restart_at = now + delay
        self._event(slot, f"{who} {reason}; restarting in {delay:g} s")

    def _respawn(self, slot: _Slot) -> None:
        slot.restart_at = None
        try:
            slot.process = self._popen(slot.rank, slot.log)
        except OSError as exc:  # e.g. fork failed under memory pressure: retry with backoff
            self._crashed(slot, f"worker {slot.rank}", f"could not start ({exc})", time.monotonic())
            return
        slot.started_at = time.monotonic()

    def _finish(self, slot: _Slot) -> None:
        slot.finished = True
        slot.restart_at = None
        if slot.log is not None:
            slot.log.close()

    def _event(self, slot: _Slot, message: str) -> None:
        # Also into the slot's log, so that reading it alone explains the restarts in it.
        if slot.log is not None and not slot.log.closed:
            slot.log.write(f"[hq-sweep launcher] {message}\n".encode())
            slot.log.flush()
        self.on_event(message)

    def _open_log(self, rank: int) -> IO[bytes] | None:
        if self.log_dir is None:
            return None
        self.log_dir.mkdir(parents=True, exist_ok=True)
        # Append: restarted workers (and reruns of the sweep) add to the same file.
        return open(self.log_dir / f"worker-{rank}.log", "ab")

    def _popen(self, rank: int, log: IO[bytes] | None) -> subprocess.Popen[bytes]:
        env = {**os.environ, **local_worker_env(rank, self.count), REDIS_URL_VAR: self.redis_url}
        command = self.command or worker_command(self.sweep_id, self.extra_args)
        return subprocess.Popen(
            list(command),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT if log is not None else None,
        )

    def _nap(self, seconds: float) -> None:
        """Block up to `seconds`, returning early when a worker exits or a restart is due."""
        due = [slot.restart_at for slot in self._slots if slot.restart_at is not None]
        if due:
            seconds = min(seconds, max(0.0, min(due) - time.monotonic()))
        live = [p for p in self.processes if p.poll() is None]
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
