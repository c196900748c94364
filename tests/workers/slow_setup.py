"""A worker whose setup() waits for the test's go-ahead, to test signals during start-up."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


def setup(ctx: Any) -> None:
    folder = Path(os.environ["HQ_SWEEP_TEST_DIR"])
    (folder / "in-setup").write_text(str(os.getpid()))
    deadline = time.monotonic() + 60
    while not (folder / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.01)


def objective(trial: Any, state: None) -> float:
    return float(trial.params["x"])
