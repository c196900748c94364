"""Pruners that are not Optuna's own: W&B's ``early_terminate`` rule."""

from hq_sweep.pruners.wandb_hyperband import WandbHyperbandPruner, should_stop

__all__ = ["WandbHyperbandPruner", "should_stop"]
