"""The sweep `hq_sweep.optimize` runs, built in memory from its arguments (no sweep file)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from optuna.study import StudyDirection

from hq_sweep.api.objective import InvalidArgument, ObjectiveRef
from hq_sweep.results.optuna_study import default_metric_names
from hq_sweep.spec.sweep import SpecError, SweepSpec, parse_spec

Direction = str | StudyDirection


def goals(direction: Direction | None, directions: Sequence[Direction] | None) -> list[str]:
    """"minimize"/"maximize" per objective, from Optuna's `direction` or `directions`."""
    if direction is not None and directions is not None:
        raise InvalidArgument("give only one of direction and directions")
    given = [direction or "minimize"] if directions is None else list(directions)
    if not given:
        raise InvalidArgument("directions: give at least one")
    return [_goal(d) for d in given]


def _goal(direction: Direction) -> str:
    if isinstance(direction, StudyDirection) and direction is not StudyDirection.NOT_SET:
        return direction.name.lower()
    if isinstance(direction, str) and direction.lower() in ("minimize", "maximize"):
        return direction.lower()
    raise InvalidArgument(f"direction: must be 'minimize' or 'maximize' (got {direction!r})")


def value_names(names: Sequence[str] | None, count: int) -> list[str]:
    """What each value is called: `names`, else "value" (one) or "value_0", "value_1"..."""
    if names is None:
        return default_metric_names(count)
    names = list(names)
    if len(names) != count or len(set(names)) != count:
        raise InvalidArgument(f"metric_names: {count} distinct name(s), one per direction "
                              f"(got {names!r})")
    return names


_PRUNERS: dict[type, str] = {
    optuna.pruners.MedianPruner: "median", optuna.pruners.PercentilePruner: "percentile",
    optuna.pruners.SuccessiveHalvingPruner: "successive_halving",
    optuna.pruners.HyperbandPruner: "hyperband", optuna.pruners.ThresholdPruner: "threshold",
    optuna.pruners.PatientPruner: "patient", optuna.pruners.WilcoxonPruner: "wilcoxon",
    optuna.pruners.NopPruner: "nop"}


def pruner_for(pruner: optuna.pruners.BasePruner | None, objectives: int
               ) -> optuna.pruners.BasePruner:
    """The pruner given, else Optuna's default (MedianPruner); none for several objectives,
    which Optuna cannot prune."""
    if objectives == 1:
        return pruner or optuna.pruners.MedianPruner()
    if pruner is not None and not isinstance(pruner, optuna.pruners.NopPruner):
        raise InvalidArgument("pruner: Optuna cannot prune a multi-objective study (several "
                              "directions): leave pruner out")
    return optuna.pruners.NopPruner()


def pruner_name(pruner: optuna.pruners.BasePruner) -> str:
    """The spec's name for the pruner's kind ("median" for one of the user's own): the spec
    names it so that workers send their reports to the pruner, and the sweep shows which."""
    found = (_PRUNERS.get(cls) for cls in type(pruner).__mro__)
    return next((name for name in found if name is not None), "median")


def build_spec(ref: ObjectiveRef, name: str, n_trials: int | None, goal_list: list[str],
               names: list[str], default_sampler: bool, pruner: str) -> SweepSpec:
    """A define-by-run sweep of `ref`: TPE as hq-sweep sets it up (`method: bayes`) unless the
    caller brings a sampler, which the controller then runs (as it runs the pruner object:
    `pruner` only names its kind)."""
    if n_trials is not None and (isinstance(n_trials, bool) or n_trials < 1):
        raise InvalidArgument(f"n_trials: must be a positive whole number (got {n_trials!r})")
    metrics = [{"name": n, "goal": g} for n, g in zip(names, goal_list, strict=True)]
    body: dict[str, Any] = {
        "name": name,
        "method": "bayes" if default_sampler else "random",
        "worker": {"module": ref.module, "objective": ref.function},
        **({"metric": metrics[0]} if len(metrics) == 1 else {"metrics": metrics}),
    }
    if pruner != "nop":
        body["pruner"] = {"name": pruner}
    if n_trials is not None:
        body["run_cap"] = n_trials
    try:
        return parse_spec(body, source="hq_sweep.optimize")
    except SpecError as exc:
        raise InvalidArgument("; ".join(exc.lines())) from None
