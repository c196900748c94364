"""The one restart policy of every launcher: what to do when a worker position's worker ends.

A launcher runs `count` slots (ranks). Each `Slot` is a small state machine, fed the worker's
exit code (`hq_sweep.exitcodes`) and the time, and it never touches a process or a job itself:

- a deliberate exit (NO_RESTART: the sweep ended, drained, cannot start), or any exit while the
  launcher is draining, FINISHes the slot: starting a worker nobody wants would only end again;
- RECYCLE/HUNG are healthy hand-overs: REPLACE at once, no backoff, not counted as a crash;
- anything else is a crash: RESTART after a backoff that doubles per crash up to
  `backoff_max_s`, and GIVE_UP once `max_crashes` crashes fall within `crash_window_s`, so a
  broken worker cannot spin forever. A run that lasted `crash_window_s` or longer forgives the
  crashes before it: the next crash waits `backoff_initial_s` again.

Times are plain floats from the caller (time.monotonic() in the launchers, a fake clock in the
tests), so the policy is pure logic.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum

from hq_sweep.exitcodes import NO_RESTART, REPLACE, describe


class Action(Enum):
    """What the launcher must do with a slot whose worker just ended."""

    FINISH = "finish"  # nothing: the slot is done (deliberate exit, or draining)
    REPLACE = "replace"  # start a fresh worker now (healthy hand-over)
    RESTART = "restart"  # start one again at `Slot.restart_at` (a crash, within limits)
    GIVE_UP = "give up"  # never start one again (crash loop)


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    delay_s: float = 0.0  # RESTART: the backoff before the next start
    crashes: int = 0  # RESTART/GIVE_UP: crashes within the window, this one included


@dataclass(frozen=True, slots=True)
class CrashPolicy:
    max_crashes: int = 5
    crash_window_s: float = 60.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0

    def __post_init__(self) -> None:
        if self.max_crashes < 1 or self.crash_window_s < 0 or self.backoff_initial_s < 0:
            raise ValueError("need max_crashes >= 1, crash_window_s >= 0, backoff_initial_s >= 0")


@dataclass
class Slot:
    """One worker position: when its worker started, its crash history, a pending restart."""

    rank: int
    policy: CrashPolicy
    started_at: float
    backoff_s: float = field(init=False)
    crashes: deque[float] = field(default_factory=deque, init=False)
    restart_at: float | None = field(default=None, init=False)  # set while in a backoff
    finished: bool = field(default=False, init=False)  # no more starts, whatever happens
    gave_up: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.backoff_s = self.policy.backoff_initial_s

    @property
    def waiting(self) -> bool:
        """In a backoff: no worker now, one due at `restart_at`."""
        return self.restart_at is not None

    @property
    def running(self) -> bool:
        """Its worker (process, HQ job) is the launcher's to watch."""
        return not self.finished and self.restart_at is None

    def exited(self, code: int, now: float, *, draining: bool = False) -> Decision:
        """Its worker ended with `code` at `now`: decide (and record) what comes next."""
        if draining or code in NO_RESTART:
            self.finish()
            return Decision(Action.FINISH)
        if now - self.started_at >= self.policy.crash_window_s:
            self.backoff_s = self.policy.backoff_initial_s  # a long healthy run forgives
        if code in REPLACE:
            return Decision(Action.REPLACE)
        return self.crashed(now)

    def crashed(self, now: float) -> Decision:
        """A crash at `now`: an exit, or a worker that could not even be started."""
        self.crashes.append(now)
        while now - self.crashes[0] > self.policy.crash_window_s:
            self.crashes.popleft()
        if len(self.crashes) >= self.policy.max_crashes:
            self.finish()
            self.gave_up = True
            return Decision(Action.GIVE_UP, crashes=len(self.crashes))
        delay = self.backoff_s
        self.backoff_s = min(delay * 2, self.policy.backoff_max_s)
        self.restart_at = now + delay
        return Decision(Action.RESTART, delay_s=delay, crashes=len(self.crashes))

    def due(self, now: float) -> bool:
        """Its backoff is over: the launcher should start its worker now."""
        return self.restart_at is not None and now >= self.restart_at

    def started(self, now: float) -> None:
        """The launcher started (or submitted) a fresh worker for it at `now`."""
        self.restart_at = None
        self.started_at = now

    def finish(self) -> None:
        """No more starts (drops a pending restart); its current worker may still run."""
        self.finished = True
        self.restart_at = None


@dataclass
class Slots:
    """A launcher's slots by rank, and whether the launcher is draining (no more starts)."""

    policy: CrashPolicy = field(default_factory=CrashPolicy)
    draining: bool = False
    _slots: list[Slot] = field(default_factory=list, init=False, repr=False)

    def add(self, now: float) -> Slot:
        """The next rank's slot, its first worker started at `now`."""
        slot = Slot(len(self._slots), self.policy, now)
        self._slots.append(slot)
        return slot

    def __iter__(self) -> Iterator[Slot]:
        return iter(self._slots)

    def __len__(self) -> int:
        return len(self._slots)

    def __getitem__(self, rank: int) -> Slot:
        return self._slots[rank]

    def exited(self, rank: int, code: int, now: float) -> Decision:
        return self._slots[rank].exited(code, now, draining=self.draining)

    def running(self) -> list[Slot]:
        return [slot for slot in self._slots if slot.running]

    def due(self, now: float) -> list[Slot]:
        return [slot for slot in self._slots if slot.due(now)]

    def next_due(self) -> float | None:
        """The earliest pending restart, so a launcher's wait can wake for it."""
        due = [slot.restart_at for slot in self._slots if slot.restart_at is not None]
        return min(due, default=None)

    def drain(self) -> list[Slot]:
        """From now on every exit finishes its slot; pending restarts are dropped (returned).

        The workers are being asked to leave: a restart would start one nobody wants.
        """
        self.draining = True
        dropped = [slot for slot in self._slots if slot.waiting]
        for slot in dropped:
            slot.finish()
        return dropped

    def finish_all(self) -> None:
        """Drain and finish every slot, running or not: the launcher stops supervising."""
        self.draining = True
        for slot in self._slots:
            slot.finish()

    def open(self) -> bool:
        """Some slot may still have a worker: running, or due after a backoff."""
        return any(not slot.finished for slot in self._slots)

    def gave_up(self) -> list[int]:
        """Ranks abandoned as crash-looping."""
        return [slot.rank for slot in self._slots if slot.gave_up]


def exit_reason(code: int) -> str:
    """describe() names known codes; keep the number beside the name so logs can be grepped."""
    text = describe(code)
    return text if code < 0 or text == f"exit code {code}" else f"exit code {code} ({text})"


def gave_up_text(rank: int, decision: Decision, policy: CrashPolicy, last: str) -> str:
    """The one-line report of a GIVE_UP decision; `last` says how the last worker ended."""
    return (f"worker {rank} crash-loops ({decision.crashes} crashes in "
            f"{policy.crash_window_s:g} s, last: {last}); giving up on it")
