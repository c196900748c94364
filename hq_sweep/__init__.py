"""hq-sweep: warm-worker hyperparameter sweeps on Redis, Optuna and Slurm."""

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy reads either)
if TYPE_CHECKING:
    from typing import Any

    from hq_sweep.api.optimizing import optimize

__version__ = "0.1.0"
__all__ = ["__version__", "optimize"]


def __getattr__(name: str) -> "Any":
    """`hq_sweep.optimize`, imported on first use: `import hq_sweep` and the CLI stay fast."""
    if name == "optimize":
        from hq_sweep.api.optimizing import optimize

        return optimize
    raise AttributeError(f"module 'hq_sweep' has no attribute {name!r}")
