"""Wire format: the JSON messages that cross Redis between controller and workers.

Everything hq-sweep stores is JSON (never pickle: a pickle in a shared Redis is code
execution for anyone who can write to it). Decoding is strict: a malformed message raises
`MessageError`, which callers quarantine instead of crashing on.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple


class MessageError(ValueError):
    """A message in hq-sweep's keys that is not what the wire format says."""


class TrialState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in FINISHED_STATES


FINISHED_STATES = frozenset({TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED})


def dumps(obj: Any) -> str:
    """Compact JSON; NaN/inf are refused so a bad value never becomes invalid JSON."""
    return json.dumps(obj, separators=(",", ":"), allow_nan=False)


def loads_object(raw: bytes | str, what: str) -> dict[str, Any]:
    try:
        obj = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MessageError(f"{what}: not JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise MessageError(f"{what}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _require(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise MessageError(f"{what}.{key}: missing or of the wrong type ({value!r})")
    return value


@dataclass(frozen=True, slots=True)
class TrialTask:
    """One trial as a worker claims it: its number and flat parameters."""

    number: int
    params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TrialOutcome:
    """How one attempt of a trial ended, as a worker records it and the controller reads it."""

    number: int
    attempt: int
    state: TrialState
    values: list[float] | None = None
    reason: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    duration: float = 0.0
    worker: str = ""

    def __post_init__(self) -> None:
        finite = bool(self.values) and all(math.isfinite(v) for v in self.values or [])
        if self.state is TrialState.COMPLETE and not finite:
            raise ValueError("a complete trial needs finite values")

    def encode(self) -> str:
        return dumps(
            {
                "n": self.number,
                "a": self.attempt,
                "s": self.state.value,
                "v": self.values,
                "r": self.reason,
                "d": round(self.duration, 6),
                "w": self.worker,
            }
        )

    @classmethod
    def decode(cls, raw: bytes | str) -> TrialOutcome:
        obj = loads_object(raw, "trial outcome")
        try:
            state = TrialState(str(obj.get("s")))
        except ValueError as exc:
            raise MessageError(f"trial outcome.s: unknown state {obj.get('s')!r}") from exc
        values = obj.get("v")
        if values is not None and (
            not isinstance(values, list) or not all(isinstance(v, int | float) for v in values)
        ):
            raise MessageError(f"trial outcome.v: expected a list of numbers, got {values!r:.80}")
        try:
            return cls(
                number=_require(obj, "n", int, "trial outcome"),
                attempt=_require(obj, "a", int, "trial outcome"),
                state=state,
                values=[float(v) for v in values] if values is not None else None,
                reason=obj.get("r") if isinstance(obj.get("r"), str) else None,
                duration=float(obj.get("d") or 0.0),
                worker=str(obj.get("w") or ""),
            )
        except ValueError as exc:
            raise MessageError(f"trial outcome: {exc}") from exc


class Report(NamedTuple):
    """An intermediate value a worker reported; the controller feeds it to the pruner.

    `awaits` says the worker is waiting (briefly) for the decision on this step, so the
    controller answers it on the trial's decision list even when the answer is "go on".
    A NamedTuple, not a frozen dataclass: a trial may report thousands of times, and this
    is built on every report (measured 0.3 vs 1.3 us).
    """

    number: int
    attempt: int
    step: int
    value: float
    awaits: bool = False

    def encode(self) -> str:
        fields: list[Any] = [self.number, self.attempt, self.step, self.value]
        return dumps([*fields, 1] if self.awaits else fields)

    @classmethod
    def decode(cls, raw: bytes | str) -> Report:
        try:
            number, attempt, step, value, *rest = json.loads(raw)
            if len(rest) > 1:
                raise ValueError(f"{len(rest) + 4} items")
            return cls(int(number), int(attempt), int(step), float(value), bool(rest and rest[0]))
        except (ValueError, TypeError) as exc:
            raise MessageError(
                f"report: expected [number, attempt, step, value(, awaits)] ({exc})") from exc


class Action(StrEnum):
    """What the controller tells a trial that reported. Only CONTINUE and PRUNE exist today;
    a strategy that checkpoints or exploits (PBT) adds its actions here."""

    CONTINUE = "continue"
    PRUNE = "prune"


@dataclass(frozen=True, slots=True)
class Decision:
    """The controller's answer to a trial's report at `step` (or an earlier one)."""

    step: int
    action: Action

    @property
    def prunes(self) -> bool:
        return self.action is Action.PRUNE

    def encode(self) -> str:
        return dumps({"s": self.step, "a": self.action.value})

    @classmethod
    def decode(cls, raw: bytes | str) -> Decision:
        obj = loads_object(raw, "decision")
        try:
            action = Action(obj.get("a"))
        except ValueError as exc:
            raise MessageError(f"decision.a: unknown action {obj.get('a')!r}") from exc
        return cls(_require(obj, "s", int, "decision"), action)
