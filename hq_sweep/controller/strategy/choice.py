"""Which strategy a sweep runs: the one place that picks it from the sweep file.

Every sweep runs Optuna's ask/tell today. A new strategy (population-based training, say)
adds its module beside this one and its case here; the loop never changes.
"""

from __future__ import annotations

from hq_sweep.controller.strategy._base import Strategy
from hq_sweep.controller.strategy.optuna_ask_tell import OptunaAskTell
from hq_sweep.spec.sweep import SweepSpec


def strategy_for(spec: SweepSpec, sweep_id: str, seed: int | None = None) -> Strategy:
    """The strategy `spec` asks for, named after its sweep (`seed` overrides the file's)."""
    return OptunaAskTell(spec, sweep_id, seed)
