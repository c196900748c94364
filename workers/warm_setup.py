"""A worker with an expensive setup and short trials: what warm workers are for.

`setup` stands for loading a model and a dataset (`BENCH_SETUP_S` seconds, 2 by default);
`objective` for a short training run (`BENCH_TRIAL_S`, 0.02 by default). Both sleep, so the
figures measure hq-sweep's overhead, not the CPU. scripts/bench_amortization.py uses it.
"""

import os
import time
from typing import Any


def setup(ctx: Any = None) -> float:
    time.sleep(float(os.environ.get("BENCH_SETUP_S", "2")))
    return float(os.environ.get("BENCH_TRIAL_S", "0.02"))


def objective(trial: Any, trial_s: float) -> float:
    time.sleep(trial_s)
    x = float(trial.params["x"])
    return (x - 0.3) ** 2
