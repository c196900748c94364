"""Objectives for chaos tests: short trials, and ones that misbehave in every way."""

from __future__ import annotations

import math
import os
import signal
import time
from typing import Any

LEAK_MB = 40


def setup(ctx: Any) -> dict[str, Any]:
    return {"leak": [], "pid": os.getpid()}


def short(trial: Any, state: dict[str, Any]) -> float:
    time.sleep(float(os.environ.get("HQ_SWEEP_TEST_PAUSE", "0.02")))
    return float(trial.params["x"]) ** 2


def misbehave(trial: Any, state: dict[str, Any]) -> float:
    kind = trial.params["kind"]
    if kind == "raise":
        raise RuntimeError("objective blew up")
    if kind == "nan":
        return math.nan
    if kind == "slow":  # interruptible: the timeout alarm stops it
        time.sleep(60)
    if kind == "stuck":  # blocks the alarm, as C code that never returns to Python would
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        time.sleep(60)
    if kind == "leak":
        state["leak"].append(bytearray(LEAK_MB * 2**20))
        for page in range(0, LEAK_MB * 2**20, 4096):  # touch it: resident, not just reserved
            state["leak"][-1][page] = 1
    return float(trial.params["x"])
