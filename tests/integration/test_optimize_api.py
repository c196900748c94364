"""`hq_sweep.optimize` (issue 12): Optuna's `study.optimize` on real warm workers, each call
with its own private server; objectives written into tmp_path."""

from __future__ import annotations

import importlib
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

import hq_sweep
from hq_sweep.api.objective import InvalidArgument
from hq_sweep.api.optimizing import OptimizeInterrupted
from hq_sweep.cli.local_run import WorkersCannotStart
from hq_sweep.queue.client import connect
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.results.optuna_study import NUMBER_ATTR, WORKER_ATTR, StudyExists
from tests.integration.helpers import poll

pytestmark = pytest.mark.integration
optuna.logging.set_verbosity(optuna.logging.WARNING)

CONDITIONAL = """
def objective(trial):
    if trial.suggest_categorical("model", ["svm", "rf"]) == "svm":
        c = trial.suggest_float("c", 1e-3, 1e3, log=True)
        trial.set_user_attr("kind", "svm")
        return (c - 1.0) ** 2
    depth = trial.suggest_int("depth", 2, 8)
    trial.set_user_attr("kind", "rf")
    return float(depth) + trial.suggest_float("x", -1.0, 1.0)
"""


def _write(tmp_path: Path, name: str, code: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(code))
    return f"{path}:objective"


@pytest.mark.timeout(90)
def test_a_define_by_run_function_gives_a_study_as_optuna_would(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The function object itself, imported from a .py file (workers import its module)."""
    _write(tmp_path, "api_conditional", CONDITIONAL)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("api_conditional")
    try:
        study = hq_sweep.optimize(module.objective, n_trials=20, workers=2,
                                  sampler=optuna.samplers.RandomSampler(seed=5))
    finally:
        sys.modules.pop("api_conditional", None)
    assert isinstance(study, optuna.Study) and study.study_name == "objective"
    trials = study.trials
    assert len(trials) == 20 and all(t.state is TrialState.COMPLETE for t in trials)
    assert study.best_value == min(t.value for t in trials if t.value is not None)
    assert study.best_params == study.best_trial.params
    assert sorted(t.system_attrs[NUMBER_ATTR] for t in trials) == list(range(20))
    assert all(t.system_attrs[WORKER_ATTR] for t in trials)
    for trial in trials:
        assert set(trial.distributions) == set(trial.params)
        assert set(trial.params) in ({"model", "c"}, {"model", "depth", "x"})
        assert trial.user_attrs == {"kind": trial.params["model"]}
        assert trial.datetime_start is not None and trial.datetime_complete is not None
        assert trial.datetime_start <= trial.datetime_complete
    assert study.trials[0].distributions["model"] == optuna.distributions.CategoricalDistribution(
        ["svm", "rf"])
    assert isinstance(study.sampler, optuna.samplers.RandomSampler)


PRUNED = """
import time

def objective(trial):
    x = trial.suggest_float("x", 0.0, 1.0)
    for step in range(60):
        trial.report(x + 1.0 / (step + 1), step)
        if trial.should_prune():
            import optuna
            raise optuna.TrialPruned()
        time.sleep(0.01)  # a step of training: time for the pruner's decision to arrive
    return x
"""


@pytest.mark.timeout(90)
def test_a_median_pruner_object_prunes_trials_that_keep_their_intermediate_values(
        tmp_path: Path) -> None:
    study = hq_sweep.optimize(_write(tmp_path, "pruned", PRUNED), n_trials=12, workers=2,
                              sampler=optuna.samplers.RandomSampler(seed=2),
                              pruner=optuna.pruners.MedianPruner(n_startup_trials=2))
    states = [t.state for t in study.trials]
    assert len(states) == 12 and set(states) <= {TrialState.COMPLETE, TrialState.PRUNED}
    pruned = [t for t in study.trials if t.state is TrialState.PRUNED]
    assert pruned, states
    for trial in pruned:
        assert trial.intermediate_values and trial.last_step is not None
        assert trial.value == trial.intermediate_values[trial.last_step]  # Optuna's own rule
    complete = [t for t in study.trials if t.state is TrialState.COMPLETE]
    assert all(len(t.intermediate_values) == 60 for t in complete)
    assert isinstance(study.pruner, optuna.pruners.MedianPruner)


TWO_VALUES = """
def objective(trial):
    x = trial.suggest_float("x", 0.0, 2.0)
    return x ** 2, (x - 2.0) ** 2
"""


@pytest.mark.timeout(90)
def test_several_directions_give_a_multi_objective_study(tmp_path: Path) -> None:
    study = hq_sweep.optimize(_write(tmp_path, "two", TWO_VALUES), n_trials=10, workers=2,
                              directions=["minimize", "maximize"], metric_names=["a", "b"],
                              sampler=optuna.samplers.RandomSampler(seed=3))
    assert study.directions == [optuna.study.StudyDirection.MINIMIZE,
                                optuna.study.StudyDirection.MAXIMIZE]
    assert study.metric_names == ["a", "b"]
    assert len(study.trials) == 10 and all(len(t.values) == 2 for t in study.trials)
    assert study.best_trials


QUADRATIC = """
def objective(trial):
    return (trial.suggest_float("x", -3.0, 3.0) - 1.0) ** 2
"""


@pytest.mark.timeout(90)
def test_a_storage_keeps_the_study_and_a_taken_name_is_refused_before_running(
        tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    objective = _write(tmp_path, "quad", QUADRATIC)
    study = hq_sweep.optimize(objective, n_trials=8, workers=2, storage=storage,
                              study_name="stored", direction="minimize")
    loaded = optuna.load_study(study_name="stored", storage=storage)
    assert len(loaded.trials) == len(study.trials) == 8
    assert loaded.best_value == study.best_value
    assert loaded.best_trial.distributions == study.best_trial.distributions
    started = time.monotonic()
    with pytest.raises(StudyExists, match="already exists"):
        hq_sweep.optimize(objective, n_trials=8, storage=storage, study_name="stored")
    assert time.monotonic() - started < 5  # refused up front: no worker started


@pytest.mark.timeout(90)
def test_on_a_given_server_the_sweep_stays_there(redis_url: str, tmp_path: Path) -> None:
    study = hq_sweep.optimize(_write(tmp_path, "quad", QUADRATIC), n_trials=5, workers=1,
                              redis_url=redis_url, study_name="shared")
    queue = SweepQueue(connect(redis_url), "shared")
    assert queue.meta.state() == "finished"
    assert queue.meta.counts()["complete"] == len(study.trials) == 5
    assert json.loads(queue.meta.read()["best"])["value"] == study.best_value


@pytest.mark.timeout(30)
def test_a_function_defined_outside_a_file_is_refused_clearly() -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec("def objective(trial):\n    return trial.suggest_float('x', 0, 1)\n", namespace)
    with pytest.raises(InvalidArgument, match=r"put it in one \(e\.g\. obj\.py\)"):
        hq_sweep.optimize(namespace["objective"], n_trials=2)
    with pytest.raises(InvalidArgument, match="not a function defined at the top"):
        hq_sweep.optimize(lambda trial: 0.0, n_trials=2)
    with pytest.raises(ValueError, match="only one of direction and directions"):
        hq_sweep.optimize("mymodule:objective", direction="minimize", directions=["maximize"])


@pytest.mark.parametrize(("code", "expected"), [
    ("raise RuntimeError('no dataset here')\ndef objective(trial):\n    return 0.0\n",
     "no dataset here"),
    # Without the `__main__` guard each worker would run a sweep of its own when importing.
    ("import hq_sweep\ndef objective(trial):\n    return 0.0\n"
     "hq_sweep.optimize(__file__ + ':objective', n_trials=1)\n", "if __name__"),
])
@pytest.mark.timeout(90)
def test_workers_that_cannot_import_the_objective_raise_at_once(
        tmp_path: Path, code: str, expected: str) -> None:
    with pytest.raises(WorkersCannotStart, match="workers cannot start") as raised:
        hq_sweep.optimize(_write(tmp_path, "broken", code), n_trials=5, workers=2)
    assert expected in str(raised.value)


SLOW = """
import time

def objective(trial):
    time.sleep(0.05)
    return trial.suggest_float("x", 0.0, 1.0)
"""


@pytest.mark.timeout(90)
def test_a_timeout_stops_asking_and_running_trials_finish(tmp_path: Path) -> None:
    started = time.monotonic()
    study = hq_sweep.optimize(_write(tmp_path, "slow", SLOW), timeout=5.0, workers=2)
    assert 5.0 <= time.monotonic() - started < 30
    # Those withdrawn before they ran are left out; the ones running at the timeout finished.
    assert study.trials and all(t.state is TrialState.COMPLETE for t in study.trials)
    numbers = [t.system_attrs[NUMBER_ATTR] for t in study.trials]
    assert numbers == sorted(numbers)


INTERRUPTED = """
import json, sys
import hq_sweep
from hq_sweep.api.optimizing import OptimizeInterrupted

if __name__ == "__main__":
    try:
        hq_sweep.optimize(sys.argv[1], workers=2)
    except OptimizeInterrupted as exc:
        print(json.dumps({"trials": len(exc.study.trials),
                          "keyboard": isinstance(exc, KeyboardInterrupt)}))
"""

MARKING = """
import pathlib, time

def objective(trial):
    pathlib.Path(__file__).with_name("ran").touch()
    time.sleep(0.05)
    return trial.suggest_float("x", 0.0, 1.0)
"""


@pytest.mark.timeout(90)
def test_ctrl_c_stops_workers_and_raises_keyboard_interrupt_with_the_study(
        tmp_path: Path) -> None:
    script = tmp_path / "driver.py"
    script.write_text(INTERRUPTED)
    objective = _write(tmp_path, "marking", MARKING)
    process = subprocess.Popen([sys.executable, str(script), objective], text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        poll(lambda: (tmp_path / "ran").exists() or process.poll() is not None, 60,
             "a first trial")
        process.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    # Promptly: within the 10 s a stopping worker is given before it is killed.
    assert time.monotonic() - interrupted < 9
    found = json.loads(out)
    # The trial running at Ctrl-C finished (its suggest answered) and is in the study.
    assert found["keyboard"] is True and found["trials"] >= 1


@pytest.mark.timeout(30)
def test_import_hq_sweep_leaves_the_api_unloaded_until_used() -> None:
    code = ("import sys, hq_sweep; before = 'hq_sweep.api' in sys.modules; "
            "hq_sweep.optimize; print(before, 'hq_sweep.api.optimizing' in sys.modules)")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=30)
    assert found.stdout.split() == ["False", "True"], found.stderr
    assert issubclass(OptimizeInterrupted, KeyboardInterrupt)
