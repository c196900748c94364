"""A trial that does no work: for measuring hq-sweep's own per-trial overhead.

`objective` returns a cheap, deterministic float computed from the numeric parameters (a sum
of squares, so samplers still see a smooth landscape); strings and booleans are ignored.
"""

from typing import Any


def setup(ctx: Any = None) -> None:
    return None


def objective(trial: Any, state: None) -> float:
    total = 0.0
    for value in trial.params.values():
        if isinstance(value, int | float) and not isinstance(value, bool):
            total += float(value) * float(value)
    return total


def objective_with_reports(trial: Any, state: None) -> float:
    """The same value, after 10 intermediate reports (for measuring what reporting costs)."""
    value = objective(trial, state)
    for step in range(10):
        trial.report(value + step, step)
    return value
