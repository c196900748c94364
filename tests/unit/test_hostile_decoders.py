"""Any bytes into the wire format's decoders: a message or a MessageError, never another
exception (hypothesis, a fixed budget); and the screening of rq job hashes."""

from __future__ import annotations

import contextlib
import json
import pickle
import zlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hq_sweep.messages import (
    Decision,
    MessageError,
    Report,
    SuggestAnswer,
    SuggestRequest,
    TrialOutcome,
    TrialRecord,
    loads_object,
)
from hq_sweep.queue.meta import decode_best
from hq_sweep.queue.rq_jobs import refusal
from hq_sweep.queue.trials import RUN_BATCH_FUNC

FUZZ = settings(max_examples=300, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])
DECODERS: dict[str, Callable[[bytes], Any]] = {
    "outcome": TrialOutcome.decode, "report": Report.decode, "decision": Decision.decode,
    "suggest request": SuggestRequest.decode, "suggest answer": SuggestAnswer.decode,
    "object": lambda raw: loads_object(raw, "field"),
}
scalars = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
           | st.sampled_from(["complete", "pruned", "failed", "cancelled", "continue", "prune"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=6)
                           | st.dictionaries(st.sampled_from("nasvrdwue") | st.text(max_size=3),
                                             inner, max_size=8), max_leaves=20)
# Wrong in a plausible way: the right shapes with wrong types, signs, sizes and states.
plausible = (st.lists(st.integers(-3, 2**64) | st.floats() | st.booleans() | st.text(max_size=3),
                      min_size=3, max_size=6)
             | st.fixed_dictionaries({"n": st.integers(-2, 10) | st.text(max_size=2),
                                      "a": st.integers(-1, 3) | st.none(),
                                      "s": st.sampled_from(["complete", "pruned", "failed", "x"]),
                                      "v": st.lists(st.floats() | st.integers(), max_size=3)
                                      | st.none(), "d": st.floats() | st.integers()}))
garbage = (st.binary(max_size=200)
           | json_values.map(lambda v: json.dumps(v).encode())
           | plausible.map(lambda v: json.dumps(v).encode())
           | st.integers().map(lambda n: ("1" + "0" * (n % 500)).encode()))  # past float


def decoded_or_refused(decode: Callable[[bytes], Any], raw: bytes) -> None:
    with contextlib.suppress(MessageError):  # anything else fails the test
        decode(raw)


@FUZZ
@given(raw=garbage)
def test_every_decoder_gives_a_message_or_a_message_error(raw: bytes) -> None:
    for decode in DECODERS.values():
        decoded_or_refused(decode, raw)


@FUZZ
@given(raw=plausible.map(lambda v: json.dumps(v).encode()))
def test_decoded_messages_hold_what_their_readers_rely_on(raw: bytes) -> None:
    try:
        report = Report.decode(raw)
    except MessageError:
        pass
    else:  # Optuna refuses negative steps; the pruner must never see NaN
        assert report.step >= 0 and report.number >= 0 and abs(report.value) < float("inf")
    try:
        outcome = TrialOutcome.decode(raw)
    except MessageError:
        return
    assert outcome.duration >= 0 and all(abs(v) < float("inf") for v in outcome.values or [])


@FUZZ
@given(stored=st.dictionaries(st.sampled_from(["state", "attempt", "params", "values", "lease",
                                               "metrics", "decision", "distributions",
                                               "ended_at", "gpus", "rss_peak_mb", "x"]),
                              garbage.map(lambda raw: raw.decode(errors="replace")), max_size=8))
def test_trial_records_never_raise(stored: dict[str, str]) -> None:
    record = TrialRecord.from_hash(3, stored)
    record.outcome()  # a record that does not read ends as failed, saying why


def test_oversized_messages_are_refused_unread() -> None:
    huge = b'{"n": 1, "a": 1, "s": "failed", "r": "' + b"x" * (3 * 2**20) + b'"}'
    with pytest.raises(MessageError, match="over the"):
        TrialOutcome.decode(huge)


@pytest.mark.parametrize("raw", [b"[0, 1, -1, 0.5]", b"[0, 1, 2, NaN]", b"[0, 1, 2, Infinity]",
                                 b"[0, 1, 1e999, 1]", b"[0, 1, 2, 0.5, 7]", b'[0, 1, "2", 0.5]',
                                 b"[0, 1, 2, " + b"1" * 400 + b"]"])
def test_reports_the_pruner_would_choke_on_are_refused(raw: bytes) -> None:
    with pytest.raises(MessageError):
        Report.decode(raw)


# ---- rq job hashes ---------------------------------------------------------------------


def job_hash(data: bytes, **extra: bytes) -> dict[bytes, bytes]:
    return {b"data": data, b"timeout": b"-1", b"status": b"queued", b"origin": b"hqs-s1",
            **{k.encode(): v for k, v in extra.items()}}


def ours(*args: Any, func: str = RUN_BATCH_FUNC) -> bytes:
    return zlib.compress(json.dumps([func, None, list(args), {}]).encode())


def test_hq_sweeps_own_job_passes_screening() -> None:
    assert refusal(job_hash(ours("s1", 4)), "s1") == ""
    assert refusal(job_hash(json.dumps([RUN_BATCH_FUNC, None, ["s1", 4], {}]).encode()),
                   "s1") == ""  # rq's fallback: stored uncompressed


class Boom:
    def __reduce__(self) -> tuple[Any, ...]:
        return (print, ("unpickled!",))


@pytest.mark.parametrize(("raw", "why"), [
    (job_hash(zlib.compress(pickle.dumps((RUN_BATCH_FUNC, None, ("s1", 4), {})))), "not JSON"),
    (job_hash(pickle.dumps(Boom())), "not JSON"),
    (job_hash(b"\x80\x04garbage"), "not JSON"),
    (job_hash(ours("echo hi", func="os.system")), "job function"),
    (job_hash(ours("s2", 4)), "arguments"),
    (job_hash(ours("s1", True)), "arguments"),
    (job_hash(ours("s1", 4), success_callback_name=b"os.system"), "success_callback_name"),
    (job_hash(ours("s1", 4), timeout=b"1"), "timeout"),
    (job_hash(zlib.compress(b" " * 10**6)), "size limit"),
    ({b"status": b"queued"}, "no data"),
])
def test_foreign_jobs_are_refused_with_a_reason(raw: dict[bytes, bytes], why: str) -> None:
    assert why in refusal(raw, "s1")


@FUZZ
@given(data=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_no_job_data_but_ours_passes(data: bytes) -> None:
    assert refusal(job_hash(data), "s1")
    assert refusal(job_hash(zlib.compress(data)), "s1")


bests = st.fixed_dictionaries({"number": st.integers() | st.floats() | st.text(max_size=2),
                               "value": st.floats() | st.integers() | st.booleans() | st.none(),
                               "params": json_values})


@FUZZ
@given(raw=garbage.map(lambda b: b.decode(errors="replace"))
       | bests.map(lambda v: json.dumps(v)))
def test_the_published_best_reads_as_what_monitors_rely_on_or_as_none(raw: str) -> None:
    best = decode_best(raw)
    if best is not None:  # what `best`, `status` and the monitor format
        assert type(best["number"]) is int and type(best["value"]) in (int, float)
        assert isinstance(best["params"], dict)
        assert f"{best['value']:.6g}"  # formats, as the monitor does


def test_the_controllers_best_reads_back() -> None:
    best = {"number": 3, "value": 0.25, "params": {"lr": 0.1}}
    assert decode_best(json.dumps(best)) == best
    assert decode_best(None) is None and decode_best("") is None
