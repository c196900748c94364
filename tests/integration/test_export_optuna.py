"""`hq-sweep export --optuna-storage URL`: a finished sweep as an Optuna study, for
`optuna.load_study` and optuna-dashboard (real server, real `hq-sweep` processes)."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from hq_sweep.results.optuna_study import NUMBER_ATTR
from tests.integration.helpers import cli_env, hq, write_sweep

pytestmark = pytest.mark.integration

OBJECTIVE = """
def objective(trial):
    x = trial.suggest_float("x", -2.0, 2.0)
    if x > 1.5:
        raise ValueError("x too big")
    trial.set_user_attr("double", 2 * x)
    return (x - trial.params["shift"]) ** 2
"""


@pytest.mark.timeout(120)
def test_export_writes_the_finished_trials_once_and_refuses_a_taken_name(
        redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "obj.py").write_text(OBJECTIVE)
    spec = write_sweep(tmp_path, {
        "name": "exp", "method": "random", "seed": 4, "run_cap": 12,
        "metric": {"name": "loss", "goal": "minimize"}, "worker": {"module": "obj.py"},
        "parameters": {"shift": {"values": [0.0, 0.5]}}})
    env = cli_env(redis_url, tmp_path)
    assert hq(["run", str(spec), "--workers", "2"], env).returncode in (0, 4)
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    written = hq(["export", "--sweep", "exp", "--optuna-storage", storage], env)
    assert written.returncode == 0, written.stderr
    assert f"optuna-dashboard {storage}" in written.stderr
    study = optuna.load_study(study_name="exp", storage=storage)
    status = json.loads(hq(["status", "--sweep", "exp", "--json"], env).stdout)["trials"]
    finished = status["complete"] + status["pruned"] + status["failed"]
    assert len(study.trials) == finished == 12
    best = json.loads(hq(["best", "--sweep", "exp", "--json"], env).stdout)
    assert study.best_value == best["value"]
    assert study.best_trial.system_attrs[NUMBER_ATTR] == best["number"]
    assert set(study.best_trial.distributions) == {"shift", "x"}
    assert study.metric_names == ["loss"]
    failed = [t for t in study.trials if t.state is TrialState.FAIL]
    assert all(t.params["x"] > 1.5 and "x too big" in t.system_attrs["hq_sweep:reason"]
               for t in failed)
    complete = [t for t in study.trials if t.state is TrialState.COMPLETE]
    assert all(t.user_attrs["double"] == 2 * t.params["x"] for t in complete)

    again = hq(["export", "--sweep", "exp", "--optuna-storage", storage], env)
    assert again.returncode == 2
    assert "a study named 'exp' already exists" in again.stderr
    assert "Traceback" not in again.stderr
    other = hq(["export", "--sweep", "exp", "--optuna-storage", storage,
                "--study-name", "exp-copy"], env)
    assert other.returncode == 0, other.stderr
    assert len(optuna.load_study(study_name="exp-copy", storage=storage).trials) == 12
