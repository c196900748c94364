"""The W&B bridge's history rules, without wandb: cases from wandb-core's own handler tests
(core/internal/stream/handler_test.go `TestHandlePartialHistory`) and the Python side's
defaults (`Run._log`: commit defaults to True without step, False with it). The real wandb
is the oracle in tests/integration/test_wandb.py."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from hq_sweep.worker.command_mode import MetricSink
from hq_sweep.worker.wandb_contract import HOOK_DIR

pytestmark = pytest.mark.timeout(30)


def load_hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("hook_under_test",
                                                  HOOK_DIR / "sitecustomize.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # not named sitecustomize: installs nothing
    return module


HOOK = load_hook()


class Rows:
    def __init__(self) -> None:
        self.written: list[dict[str, Any]] = []

    def write(self, obj: dict[str, Any]) -> None:
        self.written.append(obj)


def replay(calls: Sequence[tuple[dict[str, Any], int | None, bool | None]],
           finish: bool = True) -> list[dict[str, Any]]:
    rows = Rows()
    history = HOOK._History(rows, 0)
    for data, step, commit in calls:
        history.log(data, step, commit)
    if finish:
        history.complete()
    return rows.written


Call = tuple[dict[str, Any], int | None, bool | None]
CORE_CASES: dict[str, tuple[list[Call], list[dict[str, Any]]]] = {
    "NoFlushIncreaseStepFlush": (
        [({"key1": 1, "key2": 2}, 0, False), ({"key2": 3}, 1, True)],
        [{"_step": 0, "key1": 1, "key2": 2}, {"_step": 1, "key2": 3}]),
    "NoFlushNoIncreaseStepFlush": (
        [({"key1": 1, "key2": 2}, 0, False), ({"key2": 3}, 0, True)],
        [{"_step": 0, "key1": 1, "key2": 3}]),
    "FlushNoIncreaseStepFlush": (  # step 0 again after it was completed: dropped
        [({"key1": 1, "key2": 2}, 0, True), ({"key2": 3}, 0, True)],
        [{"_step": 0, "key1": 1, "key2": 2}]),
    "FlushIncreaseStepNoFlush": (
        [({"key1": 1, "key2": 2}, 0, True), ({"key2": 3}, 1, False), ({}, 1, True)],
        [{"_step": 0, "key1": 1, "key2": 2}, {"_step": 1, "key2": 3}]),
}


@pytest.mark.parametrize("name", sorted(CORE_CASES))
def test_rows_as_wandb_core_completes_them(name: str) -> None:
    calls, expected = CORE_CASES[name]
    assert replay(calls, finish=False) == expected


def test_defaults_commit_without_step_and_hold_with_it() -> None:
    rows = replay([({"a": 1}, None, None), ({"b": 2}, None, False), ({"a": 3}, None, None),
                   ({"a": 4}, 7, None), ({"b": 5}, 7, None)], finish=False)
    assert rows == [{"_step": 0, "a": 1}, {"_step": 1, "b": 2, "a": 3}]  # step 7 still open
    assert replay([({"a": 4}, 7, None), ({"b": 5}, 7, None)]) == [{"_step": 7, "a": 4, "b": 5}]


def test_an_empty_commit_still_advances_the_step() -> None:
    assert replay([({}, None, None), ({"a": 1}, None, None)]) == [{"_step": 1, "a": 1}]


def test_only_numbers_are_metrics_and_nested_dicts_flatten() -> None:
    flat = HOOK._flatten({"a": {"b": 1, "c": {"d": 2.5}}, "flag": True, "text": "x",
                          "np": np.float32(0.5), "np_int": np.int64(3), "arr": np.zeros(3),
                          "zero_d": np.array(1.5), "np_bool": np.bool_(True)})
    assert {k: v for k, v in flat.items() if v is not None} == {
        "a.b": 1, "a.c.d": 2.5, "np": 0.5, "np_int": 3, "zero_d": 1.5}
    assert all(type(v) in (int, float) for v in flat.values() if v is not None)


def test_a_non_number_replaces_a_number_under_the_same_key() -> None:
    assert replay([({"a": 1}, 0, False), ({"a": "text", "b": 2}, 0, True)]) == [
        {"_step": 0, "b": 2}]


def test_rank_zero_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RANK", raising=False)
    assert HOOK._is_rank_zero()
    monkeypatch.setenv("RANK", "0")
    assert HOOK._is_rank_zero()
    monkeypatch.setenv("RANK", "1")
    assert not HOOK._is_rank_zero()


class FakeTrial:
    number = 0
    params: dict[str, Any] = {}

    def __init__(self) -> None:
        self.reports: list[tuple[int, float]] = []

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))


def test_the_sink_reads_wandb_rows_and_summaries(tmp_path: Path) -> None:
    """What the bridge writes, as command mode reads it: `_step` is the step (a user's `step`
    key is a metric there), `_summary` sets the result without a report."""
    path = tmp_path / "m.jsonl"
    sink_file = HOOK._MetricsFile(str(path))
    sink_file.write({"_step": 3, "loss": 0.5, "step": 10})
    sink_file.write({"_summary": {"loss": 0.25, "note": "x"}})
    trial = FakeTrial()
    sink = MetricSink(trial, "loss")
    for line in path.read_text().splitlines():
        sink.add(json.loads(line))
    assert trial.reports == [(3, 0.5)]
    assert sink.final == {"loss": 0.25, "step": 10.0}
