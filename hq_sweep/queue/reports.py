"""Between a running trial and the controller: intermediate values going up, prune decisions
coming back, and the controller's read of outcomes and reports (its news)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import NamedTuple, TypeVar

from hq_sweep.messages import (
    Action,
    Decision,
    MessageError,
    Report,
    SuggestRequest,
    TrialOutcome,
    dumps,
)
from hq_sweep.queue.blocking import pop_within
from hq_sweep.queue.client import Client
from hq_sweep.queue.keys import SweepKeys
from hq_sweep.queue.quarantine import Quarantine
from hq_sweep.queue.scripts import script

_DECISION_TTL_MS = 60_000
_M = TypeVar("_M")
# What a trial flagged by `hq-sweep cancel` is answered (its step: any, it ends the trial).
CANCEL_DECISION = Decision(0, Action.CANCEL)


class Verdicts(NamedTuple):
    """What a batch of reports learnt: the decisions flagged on its trials, and the trials
    whose attempt no longer owns them (superseded: their lease expired and was handed on)."""

    decisions: dict[int, Decision]
    superseded: set[int]


class News(NamedTuple):
    """What the controller pops each step: outcomes, reports (if pruning) and define-by-run
    suggest requests (if the sweep runs a Python objective)."""

    outcomes: list[TrialOutcome]
    reports: list[Report]
    suggests: Sequence[SuggestRequest] = ()


class ReportChannel:
    """Reports, prune decisions and the controller's news for one sweep."""

    def __init__(self, connection: Client, keys: SweepKeys,
                 quarantine: Quarantine | None = None) -> None:
        self.connection = connection
        self.keys = keys
        self.quarantine = quarantine or Quarantine(connection, keys)

    # ---- worker side --------------------------------------------------------------------

    def report(self, report: Report, feed_pruner: bool = True) -> Verdicts:
        return self.report_many([report], feed_pruner)

    def report_many(self, reports: Sequence[Report], feed_pruner: bool) -> Verdicts:
        """Record intermediate values in one call; read back each trial's flagged decision."""
        groups: dict[tuple[int, int], list[Report]] = {}
        for report in reports:
            groups.setdefault((report.number, report.attempt), []).append(report)
        batch = []
        for (number, attempt), group in groups.items():
            fields: list[str] = []
            for r in group:
                fields += (str(r.step), repr(r.value))
            feed = [r.encode() for r in group] if feed_pruner else []
            batch.append((str(number), str(attempt), fields, feed))
        args = [self.keys.meta, "1" if feed_pruner else "0", dumps(batch),
                CANCEL_DECISION.encode()]
        replies = script("report").run(self.connection, [self.keys.part("reports")], args)
        verdicts = Verdicts({}, set())
        for (number, _), reply in zip(groups, replies, strict=True):
            if reply == -1:
                verdicts.superseded.add(number)
            elif reply:  # rare: a decision was flagged on this trial
                for decision in self._decode_all([reply], Decision.decode,
                                                 self.keys.trial(number)):
                    verdicts.decisions[number] = decision
        return verdicts

    def await_decision(self, number: int, step: int, timeout_s: float) -> Decision | None:
        """The controller's decision on `step` (or a later one) of trial `number`, None when
        none came within `timeout_s` (the deadline is ours: `blocking.pop_within`)."""

        def current(raw: bytes) -> Decision | None:
            return next((d for d in self._decode_all([raw], Decision.decode,
                                                     self.keys.decision(number))
                         if d.step >= step or d.cancels), None)

        return pop_within(self.connection, self.keys.decision(number), timeout_s, current)

    # ---- controller side ----------------------------------------------------------------

    def pop_news(self, limit: int, block_s: float, with_reports: bool,
                 with_suggests: bool = False) -> News:
        """Outcomes, (if pruning) reports and (if asked) suggest requests, waiting up to
        `block_s` for any.

        Reports are read after outcomes, so every report a worker sent before an outcome we
        hold is in hand too: the pruner sees a trial's values before the trial is told.
        """
        keys = [self.keys.part(name) for name, wanted in
                (("results", True), ("reports", with_reports), ("suggests", with_suggests))
                if wanted]
        raw = self._pop_many(keys, limit)
        if not any(raw) and block_s > 0:
            blocked = self.connection.blpop(keys, timeout=block_s)
            if blocked:
                first_key, first = bytes(blocked[0]), bytes(blocked[1])  # type: ignore[index,arg-type]
                raw = self._pop_many(keys, limit)
                raw[keys.index(first_key.decode())].insert(0, first)
        by_key = dict(zip(keys, raw, strict=True))
        results, reports, suggests = (self.keys.part(k) for k in ("results", "reports", "suggests"))
        outcomes = self._confirmed(self._decode_all(by_key[results], TrialOutcome.decode, results))
        return News(outcomes, self._decode_all(by_key.get(reports, []), Report.decode, reports),
                    self._decode_all(by_key.get(suggests, []), SuggestRequest.decode, suggests))

    def _confirmed(self, outcomes: list[TrialOutcome]) -> list[TrialOutcome]:
        """The outcomes their trial's record bears out (state, attempt, values). finish.lua
        and stop_sweep.lua write the record and push the outcome in one step, so a genuine
        outcome always matches; one that does not was written by someone else, and telling it
        would end a trial that may still run (or one that never was), or tell false values."""
        if not outcomes:
            return outcomes
        pipe = self.connection.pipeline(transaction=False)
        for outcome in outcomes:
            pipe.hmget(self.keys.trial(outcome.number), "state", "attempt", "values")
        confirmed = []
        for outcome, (state, attempt, values) in zip(outcomes, pipe.execute(), strict=True):
            if (state == outcome.state.value.encode() and attempt_of(attempt) == outcome.attempt
                    and values_of(values) == outcome.values):
                confirmed.append(outcome)
            else:
                self.quarantine.put(self.keys.part("results"), outcome.encode(),
                                    f"trial {outcome.number}'s record does not bear this outcome "
                                    f"out (state {state!r}, attempt {attempt!r})")
        return confirmed

    def decide(self, flags: Mapping[int, Decision], answers: Mapping[int, Decision]) -> None:
        """Flag decisions on trials (each trial's next report reads its flag) and answer the
        workers waiting on a decision about their trial. One round trip."""
        pipe = self.connection.pipeline(transaction=False)
        for number, decision in flags.items():
            pipe.hset(self.keys.trial(number), "decision", decision.encode())
        for number, decision in answers.items():
            key = self.keys.decision(number)
            pipe.delete(key)  # only the latest answer matters
            pipe.rpush(key, decision.encode())
            pipe.pexpire(key, _DECISION_TTL_MS)
        pipe.execute()

    def _pop_many(self, keys: Sequence[str], limit: int) -> list[list[bytes]]:
        pipe = self.connection.pipeline(transaction=False)
        for key in keys:
            pipe.lpop(key, limit)
        return [list(items or []) for items in pipe.execute()]

    def _decode_all(self, items: Iterable[bytes], decode: Callable[[bytes], _M],
                    where: str) -> list[_M]:
        """Decode each item; garbage is quarantined, never a crash."""
        decoded: list[_M] = []
        for raw in items:
            try:
                decoded.append(decode(raw))
            except MessageError as exc:
                self.quarantine.put(where, raw, str(exc))
        return decoded


def attempt_of(raw: bytes | None) -> int:
    """A record's attempt field (0 when unset, -1 when it does not read)."""
    try:
        return int(raw or 0)
    except ValueError:
        return -1


def values_of(raw: bytes | None) -> list[float] | None:
    """A record's values field as an outcome holds them (floats; None when unset)."""
    if not raw:
        return None
    try:
        return [float(v) for v in json.loads(raw)]
    except (ValueError, TypeError, OverflowError):
        return []  # matches no outcome
