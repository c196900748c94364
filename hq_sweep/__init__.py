"""hq-sweep: warm-worker hyperparameter sweeps on Redis, Optuna and Slurm."""

__version__ = "0.1.0"
