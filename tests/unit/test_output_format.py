"""How results are shown: no hard wrap outside a terminal, ISO times, params shapes, Pareto."""

from __future__ import annotations

import io
import logging
import sys
from datetime import datetime

import pytest

from hq_sweep.cli.common import PipeConsole, out, setup_logging
from hq_sweep.results.summary import iso_time, params_shape, pareto_front
from hq_sweep.spec.sweep import parse_spec

pytestmark = pytest.mark.timeout(30)
LONG = " ".join(f"word{i}" for i in range(60))  # ~400 characters


def test_a_console_into_a_file_keeps_long_lines_whole() -> None:
    buffer = io.StringIO()
    PipeConsole(file=buffer).print(LONG)
    assert buffer.getvalue() == LONG + "\n"
    wrapped = io.StringIO()
    PipeConsole(file=wrapped, force_terminal=True, width=80, color_system=None).print(LONG)
    assert len(wrapped.getvalue().splitlines()) > 1  # a terminal still wraps


def test_out_writes_to_the_stdout_of_the_moment(monkeypatch: pytest.MonkeyPatch) -> None:
    swapped = io.StringIO()
    monkeypatch.setattr(sys, "stdout", swapped)
    out().print(f"[bold]{LONG}[/]")
    assert swapped.getvalue() == LONG + "\n"  # no markup codes, no wrapping


def test_logging_outside_a_terminal_is_plain_and_unwrapped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    try:
        setup_logging()
        logging.getLogger("hq_sweep.test").warning("%s", LONG)
    finally:
        logging.basicConfig(handlers=[logging.NullHandler()], force=True)
    [line] = stderr.getvalue().splitlines()
    assert line.endswith(f" WARNING {LONG}")


def test_iso_time_is_utc_with_microseconds() -> None:
    assert iso_time(None) is None
    assert iso_time(1796191233.308) == "2026-12-02T06:00:33.308000+00:00"
    assert datetime.fromisoformat(iso_time(0.0) or "").timestamp() == 0.0


SPEC = parse_spec({"method": "random", "parameters": {
    "lr": {"min": 0.0, "max": 1.0}, "a.b": {"value": 1},
    "model": {"parameters": {"depth": {"values": [1, 2]}, "act": {"value": "relu"}}}}})
FLAT = {"lr": 0.5, "a.b": 1, "model.depth": 2, "model.act": "relu"}


def test_params_nest_as_in_the_sweep_file_or_stay_flat() -> None:
    assert params_shape(SPEC, flat=False)(FLAT) == {
        "lr": 0.5, "a.b": 1, "model": {"depth": 2, "act": "relu"}}  # a dotted name stays
    assert params_shape(SPEC, flat=True)(FLAT) == FLAT
    assert params_shape(None, flat=False)(FLAT) == FLAT  # no spec: as stored
    clash = {"model": 3, "model.depth": 2}  # undeclared in the way of a group: flat
    assert params_shape(SPEC, flat=False)(clash) == clash


def test_pareto_front_keeps_the_undominated_in_order() -> None:
    rows = [{"n": i, "values": v} for i, v in enumerate(
        [[1.0, 0.5], [2.0, 0.9], [1.5, 0.4], [0.5, 0.2], [2.0, 0.9], [1.0, 0.5]])]
    front = pareto_front(rows, [-1.0, 1.0])  # minimize the first, maximize the second
    assert [row["n"] for row in front] == [0, 1, 3, 4, 5]  # equals are all kept
    assert [row["n"] for row in pareto_front(rows, [1.0, 1.0])] == [1, 4]
