"""The human summary ``hq-sweep validate`` prints. Optuna-free: it reads the search space
through a small protocol, so the spec side can use it without importing Optuna."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from hq_sweep.spec.issues import show
from hq_sweep.spec.param_tree import ParamSpec
from hq_sweep.spec.sweep import SweepSpec


class _Axis(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def spec(self) -> ParamSpec: ...


class SpaceView(Protocol):
    @property
    def axes(self) -> Sequence[_Axis]: ...
    @property
    def distributions(self) -> Mapping[str, Any]: ...
    @property
    def constants(self) -> Mapping[str, Any]: ...
    def grid_size(self) -> int | None: ...


def _describe(p: ParamSpec) -> str:
    d = p.distribution
    if p.is_constant:
        return f"constant {show(p.value)}"
    if p.values is not None:
        text = f"{d} of {len(p.values)}: {show(p.values)}"
        return text + (f", probabilities {show(p.probabilities)}" if p.probabilities else "")
    if p.min is not None:
        text = f"{d} [{p.min}, {p.max}]"
        if d in ("log_uniform", "q_log_uniform", "inv_log_uniform"):
            lo, hi = float(p.min), float(p.max or 0)
            lo, hi = (lo, hi) if d != "inv_log_uniform" else (-hi, -lo)
            text += f" (values {math.exp(lo):.4g}..{math.exp(hi):.4g})"
    elif p.mu is not None:
        text = f"{d} mu={p.mu} sigma={p.sigma}"
    else:
        text = f"{d} a={p.a} b={p.b}"
    return text + (f", q={p.q}" if p.q is not None else "")


def _objective_line(spec: SweepSpec) -> str:
    goals = ", ".join(f"{m.name} ({m.goal})" for m in spec.objectives())
    if spec.metric is None and spec.metrics is None:
        return f"metric: {goals}: the number the objective returns"
    target = ""
    if spec.metric is not None and spec.metric.target is not None:
        target = f", target {spec.metric.target}"
    return f"{'metrics' if spec.metrics else 'metric'}: {goals}{target}"


def summary_lines(spec: SweepSpec, space: SpaceView) -> list[str]:
    """A normalized, human summary of the sweep, for ``hq-sweep validate``."""
    lines = [f"name: {spec.name or '(unnamed)'}",
             f"method: {spec.method}, sampler: {spec.sampler_name}", _objective_line(spec),
             f"parameters: {len(space.distributions)} searched, {len(space.constants)} constant"]
    lines += [f"  {a.name}: {_describe(a.spec)}" for a in space.axes]
    if spec.worker is not None:
        lines.append(f"  and any the objective's trial.suggest_* defines by running "
                     f"(sampled ahead: {spec.worker.presample})")
    size = space.grid_size()
    if spec.is_grid or spec.worker is None:
        lines.append(f"grid: {size} combinations" if size is not None
                     else "grid: not finite (continuous parameters)")
    if spec.run_cap is not None:
        lines.append(f"run_cap: {spec.run_cap}")
    if spec.early_terminate is not None:
        et = spec.early_terminate
        marks = ", ".join(map(str, et.milestones()[:8]))
        lines.append(f"early_terminate: hyperband eta={et.eta} strict={str(et.strict).lower()}"
                     f" milestones {marks}{'...' if len(et.milestones()) > 8 else ''}")
    if spec.pruner is not None:
        options = f" {show(spec.pruner.options)}" if spec.pruner.options else ""
        lines.append(f"pruner: {spec.pruner.name}{options}")
    if spec.priors:
        lines.append(f"priors: {len(spec.priors)} configuration(s) run first")
    lines.append(f"retries: {spec.retries}, trial_timeout: {spec.trial_timeout or 'none'}, "
                 f"lease: {spec.lease:g} s, parallelism: {spec.parallelism or 'all workers'}")
    if spec.max_trials_per_worker or spec.max_worker_memory_mb:
        lines.append(f"workers recycled after {spec.max_trials_per_worker or 'any number of'} "
                     f"trials or {spec.max_worker_memory_mb or 'unlimited'} MB")
    return lines
