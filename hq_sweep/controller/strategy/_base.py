"""The interface between the controller's loop and a search strategy, and what crosses it.

The loop owns the transport (lock, queue, trial numbers, batch sizing, publishing); a
strategy owns the search: which parameters to try next, what a result or a report means, and
when there is nothing more worth asking. A new strategy implements `Strategy` and is handed
to `Controller(..., strategy=...)`; the loop does not change.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

from hq_sweep.messages import (
    Decision,
    Report,
    SuggestAnswer,
    SuggestRequest,
    TrialOutcome,
    TrialRecord,
    TrialTask,
)


class History(NamedTuple):
    """What Redis holds of a sweep, for a strategy to resume from after a restart."""

    records: Sequence[TrialRecord]  # every trial's record, by number: 0 .. len - 1
    intermediate: Mapping[int, Mapping[int, float]]  # trial -> step -> value (if wanted)


class Decisions(NamedTuple):
    """What to tell trials that reported (`SweepQueue.reports.decide` takes both)."""

    flags: dict[int, Decision]  # stored on the trial's record: its next report reads it
    answers: dict[int, Decision]  # pushed to workers waiting on a decision about the trial


class Suggested(NamedTuple):
    """A define-by-run suggest answered: what to tell the worker and, when the study took the
    parameter, the trial's whole params and define-by-run distributions, for its record."""

    answer: SuggestAnswer
    params: dict[str, Any] | None = None
    distributions: dict[str, str] | None = None


class Best(NamedTuple):
    value: float
    number: int


class Stop(NamedTuple):
    """Why a strategy asks no more. With `withdraw`, trials not started yet are cancelled
    (a target was reached); without, the trials already asked still run (exhausted)."""

    reason: str
    withdraw: bool = False


class Strategy(Protocol):
    """A search the controller's loop drives. Trial numbers come from the loop; outcomes of
    numbers the strategy does not hold pending (told already, e.g. before a restart) are
    ignored, so each trial is told exactly once."""

    wants_reports: bool  # whether `decide` has anything to say (a pruner)
    # At most this many trials asked and not yet told per live worker (None: as many as
    # batching wants). A search that learns from each result samples blind far ahead of them.
    ask_ahead: int | None

    @property
    def pending(self) -> Collection[int]:
        """Trials asked and not yet told."""
        ...

    @property
    def told(self) -> int:
        """Outcomes the strategy holds, restored ones included."""
        ...

    @property
    def best(self) -> Best | None: ...

    @property
    def stop(self) -> Stop | None: ...

    def held(self) -> int:
        """Trials the strategy holds in all (told, withdrawn and pending): a check at the end."""
        ...

    def restore(self, history: History, keep_alive: Callable[[], None]) -> None:
        """Resume from the records (once, before the first ask); call `keep_alive` now and
        then during a long restore."""
        ...

    def ask(self, numbers: range) -> list[TrialTask]:
        """Tasks for `numbers`, in order; fewer (a prefix) once nothing is left to ask, when
        `stop` says why."""
        ...

    def tell(self, outcome: TrialOutcome) -> bool:
        """Take a trial's outcome (CANCELLED: withdrawn before it ran); False when the trial
        was not pending."""
        ...

    def decide(self, reports: Sequence[Report]) -> Decisions:
        """What to tell the trials behind these reports (values of steps already seen are
        skipped: a retried attempt reports them again)."""
        ...


@runtime_checkable
class SamplesByRun(Protocol):
    """A strategy that samples define-by-run parameters (`trial.suggest_*` of a name the
    sweep file does not declare). One that does not is answered for with an error."""

    def suggest(self, request: SuggestRequest) -> Suggested:
        """Sample `request.name` for pending trial `request.number` (a stale answer when the
        trial is not pending; an error answer when the study refuses the distribution)."""
        ...
