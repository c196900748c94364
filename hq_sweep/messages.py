"""Wire format: the JSON messages that cross Redis between controller and workers.

Everything hq-sweep stores is JSON (never pickle: a pickle in a shared Redis is code
execution for anyone who can write to it). Decoding is strict: a malformed message raises
`MessageError`, which callers quarantine instead of crashing on.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, NamedTuple, Self

from hq_sweep.limits import MESSAGE_BYTES, NAME_CHARS, PARAM_BYTES, REASON_CHARS, mib


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


def loads(raw: bytes | str, what: str) -> Any:
    """JSON from Redis, bounded (`limits.MESSAGE_BYTES`): anything else is a MessageError."""
    if not isinstance(raw, bytes | str):
        raise MessageError(f"{what}: expected text, got {type(raw).__name__}")
    if len(raw) > MESSAGE_BYTES:
        raise MessageError(f"{what}: {mib(len(raw))}, over the {mib(MESSAGE_BYTES)} limit")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise MessageError(f"{what}: not JSON ({str(exc)[:200]})") from exc


def loads_object(raw: bytes | str, what: str) -> dict[str, Any]:
    obj = loads(raw, what)
    if not isinstance(obj, dict):
        raise MessageError(f"{what}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _require(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = obj.get(key)
    if kind is int:
        return _whole_number(value, f"{what}.{key}")
    if not isinstance(value, kind):
        raise MessageError(f"{what}.{key}: missing or of the wrong type ({value!r:.80})")
    return value


_LARGEST = 2**53  # trial numbers, attempts and steps: JSON's exact integers


def _whole_number(value: Any, what: str) -> int:
    """A JSON integer from 0 to 2**53 (not a bool, not text): trial numbers, attempts, steps."""
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= _LARGEST:
        raise MessageError(f"{what}: expected a whole number >= 0, got {value!r:.80}")
    return value


def _finite_number(value: Any, what: str) -> float:
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise MessageError(f"{what}: expected a number, got {value!r:.80}")
    try:
        number = float(value)
    except OverflowError as exc:  # an integer too large for a float
        raise MessageError(f"{what}: {exc}") from exc
    if not math.isfinite(number):
        raise MessageError(f"{what}: expected a finite number, got {number}")
    return number


@dataclass(frozen=True, slots=True)
class TrialTask:
    """One trial as a worker claims it: its number and flat parameters, and the Optuna
    distributions (`distribution_to_json` text, by name) of those its objective sampled by
    running (define-by-run `suggest_*`), from this trial's earlier attempts."""

    number: int
    params: dict[str, Any]
    distributions: dict[str, str] = field(default_factory=dict)


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
    unused: tuple[str, ...] = ()  # define-by-run names sampled ahead the objective never asked

    def __post_init__(self) -> None:
        finite = bool(self.values) and all(math.isfinite(v) for v in self.values or [])
        if self.state is TrialState.COMPLETE and not finite:
            raise ValueError("a complete trial needs finite values")

    def encode(self) -> str:
        fields: dict[str, Any] = {
            "n": self.number, "a": self.attempt, "s": self.state.value, "v": self.values,
            "r": self.reason, "d": round(self.duration, 6), "w": self.worker}
        if self.unused:
            fields["u"] = list(self.unused)
        return dumps(fields)

    @classmethod
    def decode(cls, raw: bytes | str) -> TrialOutcome:
        obj = loads_object(raw, "trial outcome")
        raw_state = obj.get("s")
        state = _STATES.get(raw_state) if isinstance(raw_state, str) else None
        if state is None:
            raise MessageError(f"trial outcome.s: unknown state {obj.get('s')!r:.80}")
        values = obj.get("v")
        if values is not None and not isinstance(values, list):
            raise MessageError(f"trial outcome.v: expected a list of numbers, got {values!r:.80}")
        reason, duration = obj.get("r"), obj.get("d") or 0.0
        try:
            return cls(
                number=_require(obj, "n", int, "trial outcome"),
                attempt=_require(obj, "a", int, "trial outcome"),
                state=state,
                values=None if values is None else [
                    _finite_number(v, "trial outcome.v") for v in values],
                reason=reason[:REASON_CHARS] if isinstance(reason, str) else None,
                duration=max(0.0, _finite_number(duration, "trial outcome.d")),
                worker=str(obj.get("w") or "")[:200],
                unused=_names(obj.get("u")),
            )
        except MessageError:
            raise
        except ValueError as exc:  # __post_init__: a complete trial without finite values
            raise MessageError(f"trial outcome: {exc}") from exc


def _names(raw: Any) -> tuple[str, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list) or not all(isinstance(name, str) for name in raw):
        raise MessageError(f"trial outcome.u: expected a list of names, got {raw!r:.80}")
    return tuple(raw)


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
        items = loads(raw, "report")
        if not isinstance(items, list) or not 4 <= len(items) <= 5:
            raise MessageError(f"report: expected [number, attempt, step, value(, awaits)], "
                               f"got {items!r:.80}")
        number, attempt, step = (_whole_number(v, f"report[{i}]")
                                 for i, v in enumerate(items[:3]))
        awaits = items[4] if len(items) == 5 else False
        if awaits not in (0, 1):  # True/False compare equal to 1/0
            raise MessageError(f"report[4]: expected 0 or 1, got {awaits!r:.80}")
        return cls(number, attempt, step, _finite_number(items[3], "report[3]"), bool(awaits))


class Action(StrEnum):
    """What a trial that reported is told: the controller's CONTINUE or PRUNE, or CANCEL,
    flagged by `hq-sweep cancel` (the trial is abandoned and recorded as cancelled). A
    strategy that checkpoints or exploits (PBT) adds its actions here."""

    CONTINUE = "continue"
    PRUNE = "prune"
    CANCEL = "cancel"


@dataclass(frozen=True, slots=True)
class Decision:
    """The controller's answer to a trial's report at `step` (or an earlier one)."""

    step: int
    action: Action

    @property
    def prunes(self) -> bool:
        return self.action is Action.PRUNE

    @property
    def cancels(self) -> bool:
        return self.action is Action.CANCEL

    def encode(self) -> str:
        return dumps({"s": self.step, "a": self.action.value})

    @classmethod
    def decode(cls, raw: bytes | str) -> Decision:
        obj = loads_object(raw, "decision")
        try:
            action = Action(str(obj.get("a")))
        except ValueError as exc:
            raise MessageError(f"decision.a: unknown action {obj.get('a')!r}") from exc
        return cls(_require(obj, "s", int, "decision"), action)


class SuggestRequest(NamedTuple):
    """A worker asks the controller to sample parameter `name` of trial `number` (attempt
    `attempt`) from `distribution` (Optuna's `distribution_to_json` text): define-by-run."""

    number: int
    attempt: int
    name: str
    distribution: str

    def encode(self) -> str:
        return dumps([self.number, self.attempt, self.name, self.distribution])

    @classmethod
    def decode(cls, raw: bytes | str) -> SuggestRequest:
        items = loads(raw, "suggest request")
        if not isinstance(items, list) or len(items) != 4:
            raise MessageError("suggest request: expected [number, attempt, name, "
                               f"distribution], got {items!r:.80}")
        number, attempt, name, distribution = items
        if not isinstance(name, str) or not 0 < len(name) <= NAME_CHARS:
            raise MessageError(f"suggest request: the name must be text of 1 to {NAME_CHARS} "
                               f"characters, got {name!r:.80}")
        if not isinstance(distribution, str) or len(distribution) > PARAM_BYTES:
            raise MessageError("suggest request: the distribution must be text of at most "
                               f"{mib(PARAM_BYTES)}")
        return cls(_whole_number(number, "suggest request[0]"),
                   _whole_number(attempt, "suggest request[1]"), name, distribution)


@dataclass(frozen=True, slots=True)
class SuggestAnswer:
    """The controller's answer to a `SuggestRequest`: the sampled `value`, or `error` (the
    study refused the distribution: Optuna's message), or `stale` (this attempt no longer
    owns the trial)."""

    name: str
    value: Any = None
    error: str | None = None
    stale: bool = False

    def encode(self) -> str:
        body: dict[str, Any] = {"n": self.name}
        if self.stale:
            body["stale"] = True
        elif self.error is not None:
            body["e"] = self.error
        else:
            body["v"] = self.value
        return dumps(body)

    @classmethod
    def decode(cls, raw: bytes | str) -> SuggestAnswer:
        obj = loads_object(raw, "suggest answer")
        name = _require(obj, "n", str, "suggest answer")
        error = obj.get("e")
        if error is not None and not isinstance(error, str):
            raise MessageError(f"suggest answer.e: expected text, got {error!r:.80}")
        if not (obj.get("stale") or error is not None or "v" in obj):
            raise MessageError("suggest answer: neither a value, an error nor stale")
        return cls(name, obj.get("v"), error, bool(obj.get("stale")))


# ---- trial records -----------------------------------------------------------------------
#
# A trial's record is a Redis HASH of text fields (see `queue.keys`). `TrialRecord` is its one
# codec: each field's metadata says how its text reads and writes, so adding a field is one
# line here (plus the Lua script that writes it, if one does: finish.lua writes whatever
# `finish_fields` holds, and claim/reap hand whole records back).


class _Codec(NamedTuple):
    decode: Callable[[str], Any]
    encode: Callable[[Any], str]
    finishing: bool = False  # written when an attempt ends (`finish_fields`)


def _numbers(raw: str) -> list[float]:
    values = json.loads(raw)
    if not isinstance(values, list) or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise ValueError("expected a list of numbers")
    return values  # ints stay ints: exports show the values as they were stored


def _object(raw: str) -> dict[str, Any]:
    return loads_object(raw, "field")


def _texts(raw: str) -> dict[str, str]:
    found = loads_object(raw, "field")
    if not all(isinstance(v, str) for v in found.values()):
        raise ValueError("expected text values")
    return found


def _finite(raw: str) -> float:
    value = float(raw)
    if not math.isfinite(value):
        raise ValueError("not finite")
    return value


def _whole(raw: str) -> int:
    return int(float(raw))  # Lua may write a number as "1.7e+12"


def field_codec(decode: Callable[[str], Any], encode: Callable[[Any], str],
                finishing: bool = False) -> dict[str, _Codec]:
    """A field's metadata: how its text reads and writes."""
    return {"codec": _Codec(decode, encode, finishing)}


_STATES = {state.value: state for state in TrialState}  # a dict: 10x faster than TrialState()
_LIVE_STATES = (TrialState.QUEUED, TrialState.RUNNING)
_TEXT = field_codec(str, str)
_INT = field_codec(int, str)
_TIME = field_codec(_finite, repr)  # repr: what redis-py writes for a float, read back exactly
_PEAK = field_codec(_finite, "{:.1f}".format, finishing=True)
NO_RECORD = "no record"


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """A trial's record (HASH hqs:s:{id}:t:{number}), decoded.

    Decoding never raises: a field that does not read is left at its default and named in
    `problem` (as is a missing record: NO_RECORD), so callers skip or fail such a trial.
    """

    number: int
    state: TrialState | None = field(  # None: no record, or no state that reads
        default=None, metadata=field_codec(_STATES.__getitem__, lambda s: s.value, finishing=True))
    attempt: int = field(default=0, metadata=_INT)
    params: dict[str, Any] | None = field(default=None, metadata=field_codec(_object, dumps))
    queued_at: float | None = field(default=None, metadata=_TIME)
    worker: str = field(default="", metadata=_TEXT)
    started_at: float | None = field(default=None, metadata=_TIME)  # claimed, as a batch
    lease: int | None = field(default=None, metadata=field_codec(_whole, str))  # ms, server clock
    ended_at: float | None = field(
        default=None, metadata=field_codec(_finite, repr, finishing=True))
    duration: float | None = field(  # the objective's own run time, s
        default=None, metadata=field_codec(_finite, "{:.6f}".format, finishing=True))
    values: list[float] | None = field(
        default=None, metadata=field_codec(_numbers, dumps, finishing=True))
    reason: str | None = field(default=None, metadata=field_codec(str, str, finishing=True))
    metrics: dict[str, Any] | None = field(
        default=None, metadata=field_codec(_object, dumps, finishing=True))
    decision: Decision | None = field(  # flagged by the controller, read by the next report
        default=None, metadata=field_codec(Decision.decode, Decision.encode))
    released: int = field(default=0, metadata=_INT)  # attempts handed back by stopping workers
    distributions: dict[str, str] | None = field(  # define-by-run params: name -> Optuna's
        default=None, metadata=field_codec(_texts, dumps))  # distribution_to_json text
    # What the attempt cost (worker.cost): where it ran, and its peaks.
    node: str = field(default="", metadata=field_codec(str, str, finishing=True))
    gpu: str = field(default="", metadata=field_codec(str, str, finishing=True))  # as CUDA has it
    gpus: int = field(default=0, metadata=field_codec(_whole, str, finishing=True))
    rss_peak_mb: float | None = field(default=None, metadata=_PEAK)
    gpu_mem_peak_mb: float | None = field(default=None, metadata=_PEAK)  # NVML; absent: None
    problem: str = ""  # why the record does not read ("" when it does)

    @classmethod
    def from_hash(cls, number: int, stored: Mapping[str, str]) -> Self:
        """Decode trial `number`'s HASH (empty: no record). Unknown fields are ignored, so a
        newer writer's additions do not trouble an older reader."""
        if not stored:
            return cls(number, problem=NO_RECORD)
        decoders, decoded, problems = _tables(cls).decoders, {}, []
        for name, raw in stored.items():
            decode = decoders.get(name)
            if decode is None or not raw:  # "" has always meant "not set"
                continue
            try:
                decoded[name] = decode(raw)
            except (ValueError, TypeError, KeyError, ArithmeticError, RecursionError):
                problems.append(f"{name} {raw[:40]!r} does not read")
        state, values = decoded.get("state"), decoded.get("values")
        if state is None and not problems:
            problems.append("no state")
        if state is TrialState.COMPLETE and not (values and all(map(math.isfinite, values))):
            problems.append("a complete trial without finite values")
        return cls(number, problem="; ".join(problems), **decoded)

    @classmethod
    def of(cls, outcome: TrialOutcome, ended_at: float,
           metrics: dict[str, Any] | None = None, cost: Mapping[str, Any] | None = None) -> Self:
        """The record an attempt's outcome makes (its `finish_fields` are what finish.lua
        writes); `cost`: the cost fields (node, gpu, gpus, rss_peak_mb, gpu_mem_peak_mb)."""
        return cls(outcome.number, outcome.state, attempt=outcome.attempt, worker=outcome.worker,
                   ended_at=ended_at, duration=outcome.duration or None, values=outcome.values,
                   reason=outcome.reason or None, metrics=metrics or None, **(cost or {}))

    @property
    def exists(self) -> bool:
        return self.problem != NO_RECORD

    def to_hash(self) -> dict[str, str]:
        """Every field not at its default, as the HASH stores it."""
        return self._encode(finishing_only=False)

    def finish_fields(self) -> dict[str, str]:
        """The fields an attempt's end writes (state, ended_at, values, ...), where set."""
        return self._encode(finishing_only=True)

    def outcome(self) -> TrialOutcome | None:
        """How the trial ended; None while it may still run (or when there is no record).
        A record that does not read ends as failed, saying why."""
        if not self.exists or (self.state in _LIVE_STATES):
            return None
        if self.problem or self.state is None:
            return TrialOutcome(self.number, self.attempt, TrialState.FAILED,
                                reason=f"unreadable record: {self.problem}", worker=self.worker)
        return TrialOutcome(self.number, self.attempt, self.state, self.values, self.reason,
                            dict(self.metrics or {}), self.duration or 0.0, self.worker)

    def _encode(self, finishing_only: bool) -> dict[str, str]:
        tables = _tables(type(self))
        encoders = tables.finishing if finishing_only else tables.encoders
        return {name: encode(value) for name, encode, default in encoders
                if (value := getattr(self, name)) is not default and value != default}


_Encoders = tuple[tuple[str, Callable[[Any], str], Any], ...]  # name, encode, default


class _Tables(NamedTuple):
    decoders: dict[str, Callable[[str], Any]]
    encoders: _Encoders
    finishing: _Encoders


_TABLES: dict[type, _Tables] = {}  # a memo per record class, filled on first use


def _tables(cls: type[TrialRecord]) -> _Tables:
    """The record's stored fields (those with a codec: not `number` or `problem`), worked out
    once per class rather than on every record."""
    found = _TABLES.get(cls)
    if found is None:
        stored = [(f, f.metadata["codec"]) for f in fields(cls) if "codec" in f.metadata]
        encoders = tuple((f.name, codec.encode, f.default) for f, codec in stored)
        found = _TABLES[cls] = _Tables(
            {f.name: codec.decode for f, codec in stored}, encoders,
            tuple(e for e, (_, codec) in zip(encoders, stored, strict=True) if codec.finishing))
    return found
