"""Wire format: round trips, and strict decoding of garbage."""

from __future__ import annotations

import math

import pytest

from hq_sweep.messages import MessageError, Report, TrialOutcome, TrialState, dumps


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
