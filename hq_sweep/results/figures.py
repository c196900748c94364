"""Which of Optuna's plots a sweep's study can show, and drawing them with either of
optuna.visualization's backends (plotly for `hq-sweep report`, matplotlib for `hq-sweep plot`).

The charts: the optimization history, parallel coordinates and parameter importances
(fANOVA: `optuna.importance.FanovaImportanceEvaluator`, Optuna's default up to 4.x; 5.x's is
PED-ANOVA; seeded, so the same sweep draws the same bars), one of each per objective; the
intermediate values when any trial reported; and, with two or three objectives, the Pareto
front. A chart the study cannot fill (no complete trial; importances with fewer than 2
complete trials or 2 parameters that vary) is left out with a one-line note saying why.

matplotlib and plotly are the optional extra `plots`: nothing here imports them (nor
optuna.visualization, which imports plotly) until a chart is drawn.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.trial import FrozenTrial, TrialState

from hq_sweep.errors import InvalidInput

IMPORTANCE_METHOD = "fANOVA"
INSTALL_HINT = "pip install 'hq-sweep[plots]' (a checkout: .venv/bin/pip install -e '.[plots]')"


class PlotsUnavailable(InvalidInput):
    """matplotlib or plotly (the `plots` extra) is not installed."""


class NothingToPlot(InvalidInput):
    """The sweep has no complete trial: no chart has anything to show."""


def require(module: str, command: str) -> ModuleType:
    """Import `module` of the `plots` extra, or say how to install it (exit 2)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise PlotsUnavailable(f"`hq-sweep {command}` needs {module.split('.')[0]}, which is "
                               f"not installed here: {INSTALL_HINT}") from None


@dataclass(frozen=True, slots=True)
class Chart:
    """One plot to draw: its kind, the file stem it is saved under, its title."""

    kind: str  # history | parallel | importances | intermediate | pareto
    stem: str
    title: str
    objective: int | None = None  # the objective it shows (None: all, or not about values)


def metric_names(study: optuna.Study) -> list[str]:
    names = study.metric_names
    if names:
        return list(names)
    count = len(study.directions)
    return ["value"] if count == 1 else [f"value_{i}" for i in range(count)]


def charts(study: optuna.Study) -> tuple[list[Chart], list[str]]:
    """The charts this study can show, and a note for each one left out."""
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        raise NothingToPlot(f"no complete trial yet ({len(study.trials)} finished): nothing "
                            "to plot; run more trials first")
    found: list[Chart] = []
    notes: list[str] = []
    names = metric_names(study)
    for index, name in enumerate(names):
        found.extend(_per_objective(study, index, name, complete, notes))
    if any(t.intermediate_values for t in study.trials):
        found.append(Chart("intermediate", "intermediate-values",
                           "Intermediate values (trial.report)"))
    else:
        notes.append("intermediate values: left out (no trial reported any)")
    if len(names) > 1:
        _pareto(names, found, notes)
    return found, notes


def _per_objective(study: optuna.Study, index: int, name: str, complete: list[FrozenTrial],
                   notes: list[str]) -> list[Chart]:
    single = len(study.directions) == 1
    suffix = "" if single else f"-{_safe(name)}"
    direction = study.directions[index].name.lower()
    about = f"{name} ({direction})"
    made = [Chart("history", f"history{suffix}", f"Optimization history: {about}", index)]
    if any(t.params for t in complete):
        made.append(Chart("parallel", f"parallel-coordinates{suffix}",
                          f"Parallel coordinates: {about}", index))
    else:
        notes.append(f"parallel coordinates{suffix}: left out (the trials have no parameters)")
    varying = varying_params(complete)
    if len(complete) >= 2 and len(varying) >= 2:
        made.append(Chart("importances", f"importances-{IMPORTANCE_METHOD.lower()}{suffix}",
                          f"Parameter importances ({IMPORTANCE_METHOD}): {about}", index))
    else:
        notes.append(f"importances{suffix}: left out (need at least 2 complete trials with 2 "
                     f"parameters that vary; have {len(complete)} complete, "
                     f"{len(varying)} varying)")
    return made


def _pareto(names: list[str], found: list[Chart], notes: list[str]) -> None:
    if len(names) > 3:
        notes.append(f"Pareto front: left out (Optuna draws 2 or 3 objectives; {len(names)} "
                     "here)")
        return
    found.append(Chart("pareto", "pareto-front", "Pareto front: " + " vs ".join(names)))


def varying_params(complete: list[FrozenTrial]) -> list[str]:
    """Parameters every complete trial has (Optuna's importances use that intersection) whose
    distribution can vary."""
    common = set.intersection(*(set(t.distributions) for t in complete)) if complete else set()
    return sorted(n for n in common if not complete[0].distributions[n].single())


def _safe(name: str) -> str:
    """A metric name as part of a file name."""
    kept = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return kept.strip(".") or "objective"


def draw(backend: ModuleType, study: optuna.Study, chart: Chart) -> Any:
    """The chart drawn by `backend` (optuna.visualization or optuna.visualization.matplotlib):
    a plotly Figure or matplotlib Axes. Optuna's ValueError/RuntimeError (e.g. zero variance
    for the importances) propagate: the caller leaves the chart out with the reason."""
    names = metric_names(study)
    target: Callable[[FrozenTrial], float] | None = None
    name = names[0]
    if chart.objective is not None and len(names) > 1:
        index = chart.objective

        def target(trial: FrozenTrial) -> float:
            return trial.values[index]

        name = names[index]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        return _call(backend, study, chart, target, name, names)


def _call(backend: ModuleType, study: optuna.Study, chart: Chart,
          target: Callable[[FrozenTrial], float] | None, name: str, names: list[str]) -> Any:
    if chart.kind == "history":
        return backend.plot_optimization_history(study, target=target, target_name=name)
    if chart.kind == "parallel":
        return backend.plot_parallel_coordinate(study, target=target, target_name=name)
    if chart.kind == "importances":
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        return backend.plot_param_importances(study, evaluator=evaluator, target=target,
                                              target_name=name)
    if chart.kind == "intermediate":
        return backend.plot_intermediate_values(study)
    if chart.kind == "pareto":
        return backend.plot_pareto_front(study, target_names=names)
    raise ValueError(f"unknown chart kind {chart.kind!r}")
