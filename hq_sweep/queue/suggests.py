"""Define-by-run `suggest_*` between a running trial and the controller that owns the study:
requests going up (`hqs:s:{id}:suggests`, popped with the controller's news), answers coming
back on a list per attempt (`hqs:s:{id}:sug:{n}:{a}`, written by suggest.lua together with the
sampled parameter in the trial's record)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

from hq_sweep.messages import MessageError, SuggestAnswer, SuggestRequest, dumps
from hq_sweep.queue.blocking import pop_within
from hq_sweep.queue.client import Client
from hq_sweep.queue.keys import SweepKeys
from hq_sweep.queue.scripts import script

_ANSWER_TTL_MS = 60_000


class SuggestWrite(NamedTuple):
    """One answer for suggest.lua: what to record in the trial's record (None: nothing, the
    study refused the distribution) and what to tell the asking attempt."""

    request: SuggestRequest
    answer: SuggestAnswer
    params: dict[str, Any] | None = None
    distributions: dict[str, str] | None = None


class SuggestChannel:
    """Define-by-run requests and answers for one sweep."""

    def __init__(self, connection: Client, keys: SweepKeys) -> None:
        self.connection = connection
        self.keys = keys

    # ---- worker side --------------------------------------------------------------------

    def request(self, request: SuggestRequest) -> None:
        self.connection.rpush(self.keys.part("suggests"), request.encode())

    def await_answer(self, request: SuggestRequest, timeout_s: float) -> SuggestAnswer | None:
        """The answer to `request`, None when none came within `timeout_s` (answers to other
        names, e.g. a duplicate of an earlier request, are dropped)."""

        def ours(raw: bytes) -> SuggestAnswer | None:
            try:
                answer = SuggestAnswer.decode(raw)
            except MessageError:
                return None
            return answer if answer.name == request.name else None

        key = self.keys.suggest_answer(request.number, request.attempt)
        return pop_within(self.connection, key, timeout_s, ours)

    # ---- controller side ----------------------------------------------------------------

    def attempts(self, numbers: Iterable[int]) -> dict[int, tuple[str | None, int | None]]:
        """Each trial's (state, attempt) now: which asking attempts still own their trial
        (suggest.lua checks again as it records)."""
        numbers = list(dict.fromkeys(numbers))
        pipe = self.connection.pipeline(transaction=False)
        for number in numbers:
            pipe.hmget(self.keys.trial(number), "state", "attempt")
        found: dict[int, tuple[str | None, int | None]] = {}
        for number, (state, attempt) in zip(numbers, pipe.execute(), strict=True):
            raw = attempt.decode(errors="replace") if attempt else ""  # garbage: no owner
            found[number] = (state.decode(errors="replace") if state else None,
                             int(raw) if raw.isascii() and raw.isdigit() else None)
        return found

    def answer(self, writes: Sequence[SuggestWrite]) -> list[bool]:
        """Record and answer, in one call; False where the attempt no longer owned its trial
        (it was told so)."""
        if not writes:
            return []
        batch = []
        for w in writes:
            request = w.request
            recorded = w.params is not None and not w.answer.stale
            batch.append((str(request.number), str(request.attempt),
                          dumps(w.params) if recorded else "",
                          dumps(w.distributions or {}) if recorded else "",
                          w.answer.encode(), SuggestAnswer(request.name, stale=True).encode()))
        replies = script("suggest").run(self.connection, [],
                                        [self.keys.meta, _ANSWER_TTL_MS, dumps(batch)])
        return [bool(reply) for reply in replies]
