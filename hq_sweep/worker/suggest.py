"""Define-by-run `trial.suggest_*` on a warm worker: the distribution is built here, as
Optuna's `Trial` builds it (so bad bounds raise in the objective, as in Optuna); sampling it
is the controller's, which owns the study (see controller/define_by_run.py). The wait for the
answer rides out a restarting controller or a Redis blip: the request is sent again every
few seconds (answering twice is harmless: the study returns what it sampled), for as long as
Redis's own patience (`queue.retry`); the heartbeat keeps the lease meanwhile.

The one worker module that uses Optuna beyond `TrialPruned` (tests/unit/test_layout.py).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    check_distribution_compatibility,
    distribution_to_json,
    json_to_distribution,
)

from hq_sweep.errors import HqSweepError, RedisUnavailable
from hq_sweep.messages import SuggestAnswer, SuggestRequest
from hq_sweep.queue.suggests import SuggestChannel

log = logging.getLogger("hq_sweep")

__all__ = [
    "BaseDistribution",
    "SuggestUnanswered",
    "Suggester",
    "categorical",
    "check_distribution_compatibility",
    "decode_distributions",
    "encode_distributions",
    "external",
    "floating",
    "integer",
]


class SuggestUnanswered(HqSweepError):
    """The controller did not answer a define-by-run suggest within the patience."""


def floating(low: float, high: float, step: float | None, log: bool) -> FloatDistribution:
    return FloatDistribution(low, high, log=log, step=step)


def integer(low: int, high: int, step: int, log: bool) -> IntDistribution:
    return IntDistribution(low, high, log=log, step=step)


def categorical(choices: Sequence[Any]) -> CategoricalDistribution:
    return CategoricalDistribution(choices)


def external(distribution: BaseDistribution, value: Any) -> Any:
    """`value` (as JSON carried it) as the objective gets it: a float, an int, or the very
    choice object it passed (JSON keeps 1, 1.0 and True apart; Optuna's `index` would not)."""
    if isinstance(distribution, CategoricalDistribution):
        for choice in distribution.choices:
            if type(choice) is type(value) and choice == value:
                return choice
    return distribution.to_external_repr(distribution.to_internal_repr(value))


@functools.lru_cache(maxsize=4096)
def _read_distribution(text: str) -> BaseDistribution:
    """Parsed once per text: a space sampled ahead sends the same few with every trial (the
    objects are only read, never changed)."""
    return json_to_distribution(text)


def decode_distributions(stored: Mapping[str, str]) -> dict[str, BaseDistribution]:
    """A claimed task's define-by-run distributions (one that does not read is left out:
    its name is then asked again, and the controller's study answers what it holds)."""
    found: dict[str, BaseDistribution] = {}
    for name, text in stored.items():
        try:
            found[name] = _read_distribution(text)
        except (ValueError, KeyError, TypeError):
            log.warning("define-by-run parameter %r: distribution %.80r does not read",
                        name, text)
    return found


def encode_distributions(distributions: Mapping[str, BaseDistribution]) -> dict[str, str]:
    return {name: distribution_to_json(d) for name, d in distributions.items()}


class Suggester:
    """One worker's define-by-run requests: send, wait for the answer, retry."""

    def __init__(self, channel: SuggestChannel, superseded: Collection[int],
                 before: Callable[[], None] = lambda: None, patience_s: float = 300.0,
                 resend_s: float = 2.0) -> None:
        self.channel = channel
        self.superseded = superseded  # trials this worker's attempt no longer owns
        self.before = before  # records the results still buffered (the study sees them first)
        self.patience_s = patience_s
        self.resend_s = resend_s

    def sample(self, number: int, attempt: int, name: str,
               distribution: BaseDistribution) -> SuggestAnswer:
        """The controller's answer for `name` of this attempt (stale, an error, or a value)."""
        request = SuggestRequest(number, attempt, name, distribution_to_json(distribution))
        self.before()
        deadline = time.monotonic() + self.patience_s
        delay, warned = 0.1, False
        while (left := deadline - time.monotonic()) > 0:
            if number in self.superseded:
                return SuggestAnswer(name, stale=True)
            try:
                self.channel.request(request)
                answer = self.channel.await_answer(request, min(self.resend_s, left))
            except RedisUnavailable as exc:
                if not warned:
                    log.warning("suggest %r of trial %d waits for Redis (%s)", name, number, exc)
                    warned = True
                time.sleep(min(delay, max(left, 0.0)))
                delay = min(delay * 2, 5.0)
                continue
            if answer is not None:
                return answer
        raise SuggestUnanswered(f"trial {number}: the controller did not answer suggest of "
                                f"{name!r} within {self.patience_s:g} s")
