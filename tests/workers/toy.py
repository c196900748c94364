"""Test objectives: quick, deterministic, and some that misbehave on purpose."""

from __future__ import annotations

import math
import os
import time
from typing import Any

import optuna


def setup(ctx: Any) -> dict[str, Any]:
    return {"pid": os.getpid(), "setups": 1}


def objective(trial: Any, state: dict[str, Any]) -> float:
    """(x - 3)^2 + y, with an optional pause so trials overlap a controller restart."""
    x = float(trial.params["x"])
    y = float(trial.params.get("y", 0))
    pause = float(os.environ.get("HQ_SWEEP_TEST_PAUSE", "0"))
    if pause:
        time.sleep(pause)
    return (x - 3.0) ** 2 + y


def misbehave(trial: Any, state: dict[str, Any]) -> float:
    """Raises for kind=raise, returns NaN for kind=nan, else a value."""
    kind = trial.params["kind"]
    if kind == "raise":
        raise ValueError(f"bad trial {trial.number}")
    if kind == "nan":
        return math.nan
    return float(trial.params["x"])


def grid(trial: Any, state: dict[str, Any]) -> dict[str, float]:
    """Reports a few steps and returns a metrics dict."""
    value = float(trial.params["a"]) * 10 + float(trial.params["b"])
    for step in range(3):
        trial.report(value + step, step)
    return {"score": value, "extra": 1.0}


def slow_steps(trial: Any, state: dict[str, Any]) -> float:
    """Reports x * step after each of 4 steps of `HQ_SWEEP_TEST_STEP_S` (default 0.2 s)."""
    x = float(trial.params["x"])
    pause = float(os.environ.get("HQ_SWEEP_TEST_STEP_S", "0.2"))
    for step in range(4):
        time.sleep(pause)
        trial.report(x * step, step)  # may raise optuna.TrialPruned
    return x * 3


def nan_then_pruned(trial: Any, state: dict[str, Any]) -> float:
    """Reports a value, then NaN (a diverged step), then stops itself as Optuna users do."""
    trial.report(1.0, 0)
    trial.report(math.nan, 1)
    raise optuna.TrialPruned()


def odd_extras(trial: Any, state: dict[str, Any]) -> dict[str, Any]:
    """A valid score beside metrics and attributes JSON cannot hold as they are."""
    trial.set_user_attr("shape", object())
    return {"loss": float(trial.params["x"]), "grad_norm": math.inf, "lr": math.nan}
