"""One command-mode trial's program: its own process group, output readers, a safe kill."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path

STDERR_TAIL_LINES = 20
TICK_S = 0.05  # how often the metrics file and the deadline are checked while output is idle
EOF_GRACE_S = 0.5  # leader gone but its stdout still open: leftovers get this long, then kill


def _hwm_kb(pid: int | str) -> int | None:
    """VmHWM (kB) of a live process; None once it is gone (a zombie has no memory left)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as status:
            text = status.read()
    except OSError:
        return None
    at = text.find(b"VmHWM:")
    return int(text[at + 6 : text.find(b"kB", at)]) if at >= 0 else None


def _sleep_backoff(attempt: int) -> None:
    time.sleep(min(0.001 * 2**attempt, TICK_S))


class ChildProcess:
    """One trial's program in its own session/process group, with output reader threads.

    The leader is never reaped before `close()`: `waitid(WNOWAIT)` observes its exit while its
    zombie keeps the group id from being reused, so signalling the group stays safe.
    """

    def __init__(
        self, argv: list[str], cwd: str | Path | None, env: dict[str, str],
        on_stderr: Callable[[str], None],
    ) -> None:  # fmt: skip
        self.proc = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, errors="replace", bufsize=1,
            start_new_session=True,  # its own group: a kill takes its children too
        )  # fmt: skip
        self.returncode: int | None = None
        self.rss_peak_kb: int | None = None  # the program's own peak RSS (kB), see _reap
        # wait4's ru_maxrss is floored at the worker's own RSS (the pre-exec image counts),
        # so below that floor the program's peak comes from polling its VmHWM instead.
        self._floor_kb = _hwm_kb("self") or 0
        self._polled_kb = 0
        self._polled_at = 0.0
        self._exited_at: float | None = None
        self._lines: queue.Queue[str | None] = queue.Queue()  # None: stdout closed
        self._stderr: deque[str] = deque(maxlen=STDERR_TAIL_LINES)
        self._threads = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, args=(on_stderr,), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _read_stdout(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line.rstrip("\n").rstrip("\r"))
        self._lines.put(None)

    def _read_stderr(self, on_stderr: Callable[[str], None]) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.rstrip("\n").rstrip("\r")
            self._stderr.append(line)
            on_stderr(line)

    def stderr_tail(self) -> list[str]:
        return list(self._stderr)

    def leader_exited(self) -> bool:
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        try:
            return os.waitid(os.P_PID, self.proc.pid, flags) is not None
        except ChildProcessError:
            return True

    def _wait_leader(self, timeout: float) -> bool:
        end = time.monotonic() + timeout
        attempt = 0
        while not self.leader_exited():
            if time.monotonic() >= end:
                return False
            _sleep_backoff(attempt)
            attempt += 1
        return True

    def signal_group(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def lines(self, deadline: float | None) -> Iterator[str | None]:
        """Stdout lines as they arrive, None on idle ticks; ends when the program is done.

        Raises TimeoutError at `deadline` (a time.monotonic() value).
        """
        eof = False
        while True:
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise TimeoutError
            wait = TICK_S if deadline is None else min(TICK_S, deadline - now)
            if eof:  # normally the leader exits at the moment its stdout closes
                if self._wait_leader(wait):
                    return
                yield None
                continue
            self._poll_rss(now)
            try:
                line = self._lines.get(timeout=wait)
            except queue.Empty:
                self._unblock_stdout(now)
                yield None
                continue
            if line is None:
                eof = True
            else:
                yield line

    def _poll_rss(self, now: float) -> None:
        """The program's VmHWM, at most once a tick (~10 us a read)."""
        if now - self._polled_at >= TICK_S:
            self._polled_at = now
            self._polled_kb = max(self._polled_kb, _hwm_kb(self.proc.pid) or 0)

    def _unblock_stdout(self, now: float) -> None:
        """The leader is gone but a leftover child keeps stdout open: kill the leftovers."""
        if not self.leader_exited():
            return
        self._exited_at = self._exited_at or now
        if now - self._exited_at > EOF_GRACE_S:
            self.signal_group(signal.SIGKILL)

    def _reap(self) -> int:
        """Reap the leader with wait4: its own rusage gives its peak RSS (RUSAGE_CHILDREN
        would be the largest of every child the worker ever had)."""
        try:
            _, status, usage = os.wait4(self.proc.pid, 0)
        except ChildProcessError:  # reaped already (Popen's bookkeeping): no rusage
            return self.proc.wait()
        peak = usage.ru_maxrss  # kB on Linux; the program's and its reaped children's
        self.rss_peak_kb = peak if peak > self._floor_kb or not self._polled_kb else self._polled_kb
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return self.proc.returncode

    def close(self, grace: float) -> None:
        """Ends the whole group (SIGTERM, then SIGKILL after `grace`), then reaps the leader."""
        if not self.leader_exited():
            self.signal_group(signal.SIGTERM)
            self._wait_leader(grace)
        # Anything left in the group (leftovers, or a leader that ignored SIGTERM) is killed;
        # safe because the unreaped leader still pins the group id.
        self.signal_group(signal.SIGKILL)
        self.returncode = self._reap()
        for thread in self._threads:
            thread.join(timeout=grace)


