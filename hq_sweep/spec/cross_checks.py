"""Rules that span several keys of a sweep file, and the flattening of priors.

W&B sources (wandb/sweeps): ``bayes_search.py`` (bayes needs ``metric`` and at least one
non-constant parameter), ``grid_search.py`` (grid takes only categorical, constant,
int_uniform and q_uniform parameters, no probabilities), ``run.py`` / ``hyperband_stopping.py``
(early_terminate needs ``metric``), ``config/cfg.py`` (``metric`` and ``metrics`` are
exclusive; ``scheduler`` excludes ``early_terminate`` and ``controller: {type: local}``).

Each check gets the set of keys whose own validation failed (``broken``) and stays silent
about them, so one mistake is reported once.
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from typing import Any, Protocol

from hq_sweep.spec.issues import Issue, Loc, show, suggest
from hq_sweep.spec.param_tree import (
    CATEGORICAL,
    GRID_DISTRIBUTIONS,
    ParamGroup,
    ParamNode,
    ParamSpec,
    iter_leaves,
    tree_loc,
)
from hq_sweep.spec.sections import EarlyTerminate, Metric, PrunerSpec, SamplerSpec
from hq_sweep.spec.values import json_problem


class SweepSpec(Protocol):
    """The keys these rules read: `sweep.SweepSpec` has them (a Protocol, so the rules and
    the model that runs them do not import each other)."""

    @property
    def method(self) -> str: ...
    @property
    def parameters(self) -> Mapping[str, ParamSpec | ParamGroup]: ...
    @property
    def metric(self) -> Metric | None: ...
    @property
    def metrics(self) -> list[Metric] | None: ...
    @property
    def early_terminate(self) -> EarlyTerminate | None: ...
    @property
    def sampler(self) -> SamplerSpec | None: ...
    @property
    def pruner(self) -> PrunerSpec | None: ...
    @property
    def controller(self) -> dict[str, Any] | None: ...
    @property
    def scheduler(self) -> dict[str, Any] | None: ...
    @property
    def priors(self) -> list[dict[str, Any]]: ...
    @property
    def is_grid(self) -> bool: ...
    @property
    def worker(self) -> Any: ...  # `sections.WorkerEntry | None`


def cross_issues(spec: SweepSpec, broken: Set[str]) -> list[Issue]:
    issues: list[Issue] = []
    for check in (_metric_keys, _bayes, _grid, _sampler, _early_terminate, _pruner, _priors):
        issues += check(spec, broken)
    return issues


def _metric_keys(spec: SweepSpec, broken: Set[str]) -> list[Issue]:
    if spec.metrics is None:
        return []
    if spec.metric is not None:
        msg = "cannot be combined with metric: use metric for one objective, metrics for several"
        return [(("metrics",), msg)]
    if not spec.metrics:
        return [(("metrics",), "must list at least one metric")]
    seen: set[str] = set()
    issues: list[Issue] = []
    for i, metric in enumerate(spec.metrics):
        if metric.name in seen:
            issues.append((("metrics", i, "name"), f"duplicate metric name {show(metric.name)}"))
        seen.add(metric.name)
    return issues


def _bayes(spec: SweepSpec, broken: Set[str]) -> list[Issue]:
    if spec.method != "bayes" or "method" in broken:
        return []
    issues: list[Issue] = []
    if spec.metric is None and not spec.metrics and not {"metric", "metrics"} & broken:
        issues.append((("metric",), "required for method bayes: Bayesian search needs a metric"))
    if ("parameters" not in broken and spec.worker is None
            and all(p.is_constant for _, p in iter_leaves(spec.parameters))):
        issues.append((("parameters",), "method bayes needs at least one non-constant parameter"))
    return issues


def _grid(spec: SweepSpec, broken: Set[str]) -> list[Issue]:
    if {"method", "sampler"} & broken:
        return []
    if spec.is_grid:
        who = "method grid" if spec.method == "grid" else "sampler grid"
        allowed = GRID_DISTRIBUTIONS
    elif spec.sampler is not None and spec.sampler.name == "bruteforce":
        who, allowed = "sampler bruteforce", GRID_DISTRIBUTIONS | CATEGORICAL
    else:
        return []
    if not spec.parameters and "parameters" not in broken:  # a define-by-run worker's sweep
        return [(("parameters",), f"{who} walks the declared parameters: declare them, or "
                                  "use method random or bayes for define-by-run suggest_*")]
    issues: list[Issue] = []
    for path, p in iter_leaves(spec.parameters):
        loc: Loc = ("parameters", *tree_loc(path))
        if p.distribution == "categorical_w_probabilities" and p.distribution not in allowed:
            issues.append(((*loc, "probabilities"), f"not allowed with {who} (W&B refuses them)"))
        elif p.distribution not in allowed:
            issues.append((loc, f"{p.distribution} cannot be enumerated by {who}: "
                                "use values, value, int_uniform, q_uniform or range"))
    return issues


def _sampler(spec: SweepSpec, broken: Set[str]) -> list[Issue]:
    if spec.sampler is None:
        return []
    name = spec.sampler.name
    issues: list[Issue] = []
    if spec.method == "grid" and name != "grid" and "method" not in broken:
        issues.append((("sampler", "name"), "method grid walks its own grid: use sampler grid "
                                            f"or leave sampler out (got {show(name)})"))
    if name == "cmaes" and len(spec.metrics or ()) > 1:
        issues.append((("sampler", "name"), "cmaes optimizes a single objective, "
                                            f"metrics lists {len(spec.metrics or ())}"))
    if "seed" in spec.sampler.options:
        issues.append((("sampler", "options", "seed"), "set sampler.seed (or seed) instead"))
    return issues


def _early_terminate(spec: SweepSpec, broken: Set[str]) -> list[Issue]:
    issues: list[Issue] = []
    if spec.scheduler is not None and (spec.controller or {}).get("type") == "local":
        issues.append((("scheduler",), "cannot be combined with controller type local"))
    if spec.early_terminate is None:
        return issues
    if spec.metrics:
        issues.append((("early_terminate",), "needs a single metric, not metrics"))
    elif spec.metric is None and not {"metric", "metrics"} & broken:
        msg = "needs metric: W&B's hyperband rule ranks runs by metric.name"
        issues.append((("early_terminate",), msg))
    if spec.pruner is not None:
        msg = "cannot be combined with early_terminate: choose one way to stop trials early"
        issues.append((("pruner",), msg))
    if spec.scheduler is not None:
        issues.append((("early_terminate",), "cannot be combined with scheduler"))
    return issues


def _pruner(spec: SweepSpec, broken: Set[str]) -> list[Issue]:
    if spec.pruner is None or spec.pruner.name == "nop" or len(spec.metrics or ()) < 2:
        return []
    return [(("pruner",), "Optuna cannot prune a multi-objective study: drop pruner or metrics")]


def _priors(spec: SweepSpec, broken: Set[str]) -> list[Issue]:
    if not spec.priors or "priors" in broken:
        return []
    skip = frozenset(b.split(".", 1)[1] for b in broken if b.startswith("parameters."))
    if "parameters" in broken and not skip:
        return []
    issues: list[Issue] = []
    for i, prior in enumerate(spec.priors):
        problem = json_problem(prior)
        if not isinstance(prior, Mapping):
            msg = f"must be a mapping of parameter names to values (got {show(prior)})"
            issues.append((("priors", i), msg))
        elif problem:
            issues.append((("priors", i), problem))
        else:
            issues += flatten_prior(spec.parameters, prior, ("priors", i), skip)[1]
    return issues


@dataclass
class _PriorWalk:
    leaves: dict[str, ParamSpec]
    skip: frozenset[str]
    flat: dict[str, Any] = field(default_factory=dict)
    issues: list[Issue] = field(default_factory=list)

    def walk(self, tree: Mapping[str, ParamNode], given: Mapping[str, Any],
             prefix: tuple[str, ...], loc: Loc) -> None:
        for key, value in given.items():
            path, here = (*prefix, str(key)), (*loc, str(key))
            name = ".".join(path)
            if path[0] in self.skip or name.split(".")[0] in self.skip:
                continue
            node = tree.get(str(key))
            if isinstance(node, ParamGroup):
                if isinstance(value, Mapping):
                    self.walk(node.parameters, value, path, here)
                else:
                    self.issues.append((here, "must be a mapping of this group's parameters"))
            elif name in self.leaves:
                self.leaf(name, value, here)
            else:
                hint = suggest(name, self.leaves)
                self.issues.append((here, f"not a declared parameter{hint}"))

    def leaf(self, name: str, value: Any, here: Loc) -> None:
        if name in self.flat:
            self.issues.append((here, "given twice"))
            return
        problem = self.leaves[name].value_problem(value)
        if problem:
            self.issues.append((here, problem))
        else:
            self.flat[name] = value


def flatten_prior(tree: Mapping[str, ParamNode], prior: Mapping[str, Any], loc: Loc = (),
                  skip: frozenset[str] = frozenset()) -> tuple[dict[str, Any], list[Issue]]:
    """A prior (nested like the spec, or with dotted flat names) as flat names -> values,
    with an issue for each unknown name or out-of-domain value."""
    leaves = {".".join(path): p for path, p in iter_leaves(tree)}
    walker = _PriorWalk(leaves, skip)
    walker.walk(tree, prior, (), loc)
    return walker.flat, walker.issues
