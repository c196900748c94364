"""Wire format: round trips, and strict decoding of garbage."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pytest

from hq_sweep.messages import (
    NO_RECORD,
    Action,
    Decision,
    MessageError,
    Report,
    TrialOutcome,
    TrialRecord,
    TrialState,
    dumps,
    field_codec,
)


def test_outcome_round_trip() -> None:
    outcome = TrialOutcome(7, 2, TrialState.COMPLETE, [0.5, 1.25], None, {}, 0.125, "w1")
    assert TrialOutcome.decode(outcome.encode()) == outcome


def test_complete_outcome_needs_finite_values() -> None:
    with pytest.raises(ValueError):
        TrialOutcome(1, 1, TrialState.COMPLETE, [math.nan])
    with pytest.raises(ValueError):
        TrialOutcome(1, 1, TrialState.COMPLETE, None)


@pytest.mark.parametrize("raw", [
    b"not json", b"[1, 2]", b'{"n": 1, "a": 1, "s": "weird"}', b'{"n": "1", "a": 1, "s": "failed"}',
    b'{"n": 1, "a": 1, "s": "complete", "v": ["x"]}', b'{"n": true, "a": 1, "s": "failed"}',
])
def test_outcome_garbage_is_a_message_error(raw: bytes) -> None:
    with pytest.raises(MessageError):
        TrialOutcome.decode(raw)


def test_report_round_trip_keeps_exact_floats() -> None:
    report = Report(1, 1, 5, 0.9583333333333334)
    assert Report.decode(report.encode()) == report
    waiting = Report(1, 1, 5, 0.5, awaits=True)
    assert Report.decode(waiting.encode()) == waiting
    assert Report.decode(b"[1, 1, 5, 0.5]").awaits is False  # reports from older workers
    with pytest.raises(MessageError):
        Report.decode(b"[1, 2]")


def test_dumps_refuses_nan() -> None:
    with pytest.raises(ValueError):
        dumps({"v": math.nan})


# ---- trial records -----------------------------------------------------------------------

STORED = {  # a finished record as the scripts leave it
    "state": "complete", "attempt": "2", "params": '{"x":0.5,"opt":{"lr":1}}',
    "queued_at": "1796191232.7818158", "worker": "vm-r0-1", "started_at": "1796191233.308",
    "ended_at": "1796191233.309004", "duration": "0.000013", "values": "[2.0,3]",
    "reason": "fine", "metrics": '{"acc":0.5}', "decision": '{"s":3,"a":"continue"}',
    "released": "1",
}


def test_record_round_trips_both_ways() -> None:
    record = TrialRecord.from_hash(4, STORED)
    assert not record.problem and record.exists
    assert record == TrialRecord(
        4, TrialState.COMPLETE, 2, {"x": 0.5, "opt": {"lr": 1}}, 1796191232.7818158, "vm-r0-1",
        1796191233.308, None, 1796191233.309004, 0.000013, [2.0, 3], "fine", {"acc": 0.5},
        Decision(3, Action.CONTINUE), 1)
    assert record.to_hash() == STORED
    assert TrialRecord.from_hash(4, record.to_hash()) == record
    assert type(record.values[1]) is int  # type: ignore[index]  # exports show what was stored


def test_record_fields_at_their_default_are_not_written() -> None:
    queued = TrialRecord(0, TrialState.QUEUED, params={"x": 1}, queued_at=1.5)
    assert queued.to_hash() == {"state": "queued", "params": '{"x":1}', "queued_at": "1.5"}
    assert TrialRecord.from_hash(0, {**queued.to_hash(), "reason": ""}) == queued  # "" is unset


def test_finish_fields_are_what_an_attempt_end_writes() -> None:
    outcome = TrialOutcome(3, 2, TrialState.PRUNED, [0.25], "pruned at step 4", {}, 1.5, "w")
    record = TrialRecord.of(outcome, ended_at=10.0, metrics={"acc": 1})
    assert record.finish_fields() == {"state": "pruned", "ended_at": "10.0", "duration": "1.500000",
                                      "values": "[0.25]", "reason": "pruned at step 4",
                                      "metrics": '{"acc":1}'}
    assert TrialRecord.from_hash(3, record.to_hash()).outcome() == TrialOutcome(
        3, 2, TrialState.PRUNED, [0.25], "pruned at step 4", {"acc": 1}, 1.5, "w")


@pytest.mark.parametrize("field", ["state", "attempt", "params", "queued_at", "started_at",
                                   "lease", "ended_at", "duration", "values", "metrics",
                                   "decision", "released"])
@pytest.mark.parametrize("garbage", ["\x80{", "[1, 2", "nan-ish", '"a"', "[[1]]", "1" * 5000])
def test_garbage_in_any_field_reads_with_a_reason_never_a_crash(field: str, garbage: str) -> None:
    record = TrialRecord.from_hash(9, {**STORED, field: garbage})
    assert record.exists and record.problem.startswith(f"{field} ")
    assert getattr(record, field) == getattr(TrialRecord(9), field)  # left at its default
    outcome = record.outcome()
    assert outcome is not None and outcome.state is TrialState.FAILED
    assert outcome.reason is not None and outcome.reason.startswith("unreadable record: ")


def test_records_that_cannot_be_used_say_why() -> None:
    missing = TrialRecord.from_hash(1, {})
    assert not missing.exists and missing.problem == NO_RECORD and missing.outcome() is None
    assert TrialRecord.from_hash(1, {"params": "{}"}).problem == "no state"
    no_values = TrialRecord.from_hash(1, {"state": "complete", "values": "[NaN]"})
    assert "finite" in no_values.problem
    assert no_values.outcome() == TrialOutcome(
        1, 0, TrialState.FAILED, reason=f"unreadable record: {no_values.problem}")
    live = TrialRecord.from_hash(1, {"state": "running", "params": "garbage"})
    assert live.problem and live.outcome() is None  # still running: its claim failed it
    assert TrialRecord.from_hash(1, {"state": "queued", "newer": "field"}).problem == ""
    cancelled = TrialRecord.from_hash(1, {"state": "cancelled"}).outcome()
    assert cancelled is not None and cancelled.state is TrialState.CANCELLED


@dataclass(frozen=True, slots=True)
class WithHost(TrialRecord):
    """A record with one more finishing field: declaring it is all it takes."""

    host: str = field(default="", metadata=field_codec(str, str, finishing=True))


def test_a_new_field_is_one_declaration() -> None:
    record = WithHost(2, TrialState.FAILED, ended_at=1.0, host="node-7")
    assert record.finish_fields() == {"state": "failed", "ended_at": "1.0", "host": "node-7"}
    assert WithHost.from_hash(2, record.to_hash()) == record
    assert TrialRecord.from_hash(2, record.to_hash()).problem == ""  # older readers ignore it
