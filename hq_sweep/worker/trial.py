"""The trial object a user's objective receives, and the context its setup() receives."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from optuna import TrialPruned

from hq_sweep.env import JobEnvironment
from hq_sweep.limits import NAME_CHARS, PARAM_BYTES, REPORTS_PER_TRIAL, mib
from hq_sweep.messages import Decision, SuggestAnswer
from hq_sweep.worker.suggest import (
    BaseDistribution,
    categorical,
    check_distribution_compatibility,
    encode_distributions,
    external,
    floating,
    integer,
)

log = logging.getLogger("hq_sweep")


class UndeclaredParameter(KeyError):
    """The objective asked for a parameter the sweep file does not declare."""

    def __str__(self) -> str:
        return str(self.args[0])


class AttemptSuperseded(Exception):
    """This attempt no longer owns its trial (its lease expired and it was handed on)."""


class TooLarge(ValueError):
    """What a trial would store is over a size limit (`hq_sweep.limits`): the trial fails,
    saying which, and nothing of it is stored."""


class TrialCancelled(BaseException):
    """`hq-sweep cancel` flagged this trial: abandon it (it is recorded as cancelled).

    A BaseException, so a user's `except Exception:` cannot swallow it.
    """


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """What `setup(ctx)` learns about where it runs."""

    worker_name: str
    sweep: str
    spec: Any
    job: JobEnvironment

    @property
    def rank(self) -> int:
        return self.job.rank

    @property
    def local_rank(self) -> int:
        return self.job.local_rank

    @property
    def node(self) -> str:
        return self.job.node

    @property
    def gpu(self) -> str | None:
        return self.job.gpu


# report(step, value) -> the controller's latest decision on the trial, if any; raises
# AttemptSuperseded when this attempt no longer owns the trial.
Reporter = Callable[[int, float], Decision | None]
# sample(name, distribution) -> the controller's answer for a define-by-run parameter.
Sampler = Callable[[str, BaseDistribution], SuggestAnswer]


class Trial:
    """One attempt of one trial, as `objective(trial, state)` sees it.

    `params` is nested as in the sweep file (flat, as Optuna has it, for a one-argument
    Optuna-style objective), `flat_params` uses dotted names. `suggest_*` is Optuna's: a
    declared parameter returns the value the controller assigned; any other name is
    sampled by the controller's study (define-by-run) once per trial, then remembered with
    its distribution in `distributions`.
    """

    def __init__(
        self,
        number: int,
        attempt: int,
        flat_params: Mapping[str, Any],
        params: Mapping[str, Any],
        reporter: Reporter,
        cancelled: Callable[[], bool] | None = None,
        sampler: Sampler | None = None,
        ahead: Mapping[str, tuple[Any, BaseDistribution]] | None = None,
    ) -> None:
        self.number = number
        self.attempt = attempt
        self.flat_params = dict(flat_params)
        self.params = dict(params)
        self.distributions: dict[str, BaseDistribution] = {}  # those the objective asked
        self._sampler = sampler  # None: undeclared names are an error (no controller to ask)
        # Define-by-run values sampled before the objective asks: by the controller as it
        # asked the trial, or for an earlier attempt. Shown once asked, as in Optuna.
        self._ahead = dict(ahead or {})
        self.user_attrs: dict[str, Any] = {}
        self.last_step: int | None = None
        self.last_value: float | None = None
        self.last_finite: float | None = None  # the latest value that was a number
        self._reports = 0  # reports sent (REPORTS_PER_TRIAL bounds them)
        self._reporter = reporter
        self._cancelled = cancelled or (lambda: False)  # the heartbeat learnt of a cancel
        self._prune = False
        self._cancel = False  # a report learnt of a cancel

    @property
    def unasked(self) -> tuple[str, ...]:
        """Names sampled ahead that the objective has not asked (so far)."""
        return tuple(self._ahead)

    def report(self, value: float, step: int) -> None:
        """Record an intermediate value; raise `optuna.TrialPruned` if told to stop (or
        `TrialCancelled` once `hq-sweep cancel` flagged the trial)."""
        value = float(value)
        step = int(step)
        if step < 0:
            raise ValueError(f"trial.report: step {step} is negative (as in Optuna, it may not be)")
        if math.isfinite(value) and self._counted():
            self.last_finite = value
            decision = self._reporter(step, value)
            self._prune = decision is not None and decision.prunes
            self._cancel = self._cancel or (decision is not None and decision.cancels)
        self.last_step, self.last_value = step, value
        self.check_cancelled()
        if self._prune:
            raise TrialPruned(f"pruned at step {step}")

    def _counted(self) -> bool:
        """Whether this report is within REPORTS_PER_TRIAL (later ones are not recorded)."""
        self._reports += 1
        if self._reports == REPORTS_PER_TRIAL + 1:
            log.warning("trial %d: over %d reports; later ones are not recorded "
                        "(hq_sweep.limits.REPORTS_PER_TRIAL)", self.number, REPORTS_PER_TRIAL)
        return self._reports <= REPORTS_PER_TRIAL

    def should_prune(self) -> bool:
        """The controller's latest decision, as learnt with the last report (True too once
        the trial is cancelled: an objective that stops itself then is recorded cancelled)."""
        return self._prune or self._cancel or self._cancelled()

    def check_cancelled(self) -> None:
        """Raise `TrialCancelled` once the trial was cancelled (learnt with a report or the
        worker's heartbeat). Command mode calls it while its program runs."""
        if self._cancel or self._cancelled():
            raise TrialCancelled(f"trial {self.number} cancelled")

    def set_user_attr(self, key: str, value: Any) -> None:
        self.user_attrs[key] = value

    def _declared(self, name: str) -> bool:
        return name in self.flat_params or sum(
            key.rsplit(".", 1)[-1] == name for key in self.flat_params) == 1

    def _lookup(self, name: str) -> Any:
        if name in self.flat_params:
            return self.flat_params[name]
        matches = [key for key in self.flat_params if key.rsplit(".", 1)[-1] == name]
        if len(matches) == 1:
            return self.flat_params[matches[0]]
        declared = ", ".join(sorted(self.flat_params)) or "none"
        raise UndeclaredParameter(
            f"parameter {name!r} is not declared in the sweep file (declared: {declared})"
        )

    def _suggest(self, name: str, make: Callable[[], BaseDistribution]) -> Any:
        """A define-by-run parameter: as asked before in this attempt (Optuna's compatibility
        check first), else as sampled ahead for this distribution, else the controller's
        sample (which samples again a name sampled ahead from another distribution)."""
        known = self.distributions.get(name)
        if known is not None:
            check_distribution_compatibility(known, make())
            return self.flat_params[name]
        ahead = self._ahead.get(name)
        if ahead is not None:
            distribution = make()
            value = (external(distribution, ahead[0]) if distribution == ahead[1]
                     else self._ask(name, distribution))  # (refused: it stays unasked)
            del self._ahead[name]
            return self._take(name, value, distribution)
        if self._sampler is None or self._declared(name):
            return self._lookup(name)
        return self._ask(name, make())

    def _ask(self, name: str, distribution: BaseDistribution) -> Any:
        if self._sampler is None:
            raise UndeclaredParameter(f"parameter {name!r}: no controller to sample it")
        _check_size(name, distribution)
        answer = self._sampler(name, distribution)
        if answer.stale:
            raise AttemptSuperseded(f"trial {self.number} attempt {self.attempt} superseded")
        if answer.error is not None:
            raise ValueError(answer.error)  # the study's own refusal (Optuna's message)
        return self._take(name, external(distribution, answer.value), distribution)

    def _take(self, name: str, value: Any, distribution: BaseDistribution) -> Any:
        self.flat_params[name] = self.params[name] = value
        self.distributions[name] = distribution
        return value

    def suggest_float(self, name: str, low: float | None = None, high: float | None = None,
                      *, step: float | None = None, log: bool = False) -> float:
        return float(self._suggest(name, lambda: floating(*_bounds(name, low, high), step, log)))

    def suggest_int(self, name: str, low: int | None = None, high: int | None = None,
                    step: int = 1, log: bool = False) -> int:
        value = self._suggest(name, lambda: integer(*_bounds(name, low, high), step, log))
        if isinstance(value, float) and not value.is_integer():
            raise TypeError(f"parameter {name!r} is {value!r}, not an integer")
        return int(value)

    def suggest_categorical(self, name: str, choices: Sequence[Any] = ()) -> Any:
        return self._suggest(name, lambda: categorical(choices))

    def suggest_uniform(self, name: str, low: float, high: float) -> float:
        return self.suggest_float(name, low, high)

    def suggest_loguniform(self, name: str, low: float, high: float) -> float:
        return self.suggest_float(name, low, high, log=True)


def _bounds(name: str, low: Any, high: Any) -> tuple[Any, Any]:
    if low is None or high is None:
        raise TypeError(f"suggest of {name!r} needs low and high: it is not declared in the "
                        "sweep file, so the study samples it from the range given here")
    return low, high


def _check_size(name: str, distribution: BaseDistribution) -> None:
    """Refuse, before anything is sent or stored, a define-by-run parameter whose name or
    distribution (a categorical's choices: any of them may become its value) is too large."""
    if len(name) > NAME_CHARS:
        raise TooLarge(f"too large: a parameter name of {len(name)} characters; the limit is "
                       f"{NAME_CHARS} (hq_sweep.limits.NAME_CHARS)")
    size = len(encode_distributions({name: distribution})[name])
    if size > PARAM_BYTES:
        raise TooLarge(f"too large: parameter {name!r}'s distribution takes {mib(size)} as "
                       f"JSON; the limit is {mib(PARAM_BYTES)} (hq_sweep.limits.PARAM_BYTES)")
