"""Objectives for the hostile-input tests: results and parameters over the size limits, and
a short trial that touches every channel (reports for the pruner, a define-by-run suggest)."""

from __future__ import annotations

import os
import time
from typing import Any

BIG_RESULT = 100_000_000  # bytes: a 100 MB result
BIG_PARAM = 10_000_000  # bytes: a 10 MB parameter value


def setup(ctx: Any) -> dict[str, Any]:
    return {"pid": os.getpid()}


def oversized(trial: Any, state: dict[str, Any]) -> Any:
    kind = trial.params["kind"]
    if kind == "big_result":
        return {"value": 1.0, "blob": "r" * BIG_RESULT}
    if kind == "big_param":
        trial.suggest_categorical("blob", ["p" * BIG_PARAM, "small"])
    if kind == "big_attr":
        trial.set_user_attr("blob", "a" * (BIG_RESULT // 5))
    return {"value": 1.0, "pid": state["pid"]}


def busy(trial: Any, state: dict[str, Any]) -> float:
    x = float(trial.params["x"])
    y = trial.suggest_float("y", 0.0, 1.0)  # define-by-run: the controller samples it
    for step in range(2):
        time.sleep(float(os.environ.get("HQ_SWEEP_TEST_PAUSE", "0.005")))
        trial.report(x + y + step, step)
    return x * x + y
