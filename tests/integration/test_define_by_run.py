"""Optuna define-by-run objectives on warm workers (issue 12): `trial.suggest_*` of names the
sweep file does not declare, sampled by the controller's study. Real server, real `hq-sweep`
processes, objectives written into tmp_path."""

from __future__ import annotations

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    check_distribution_compatibility,
    distribution_to_json,
    json_to_distribution,
)

from hq_sweep.controller.loop import Controller, ControllerOptions
from hq_sweep.controller.rebuild import read_history
from hq_sweep.controller.strategy.optuna_ask_tell import OptunaAskTell
from hq_sweep.messages import SuggestAnswer, SuggestRequest, TrialOutcome, TrialState
from hq_sweep.queue.client import connect
from hq_sweep.queue.registry import SweepRegistry
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.queue.trials import Finish
from hq_sweep.spec.sweep import parse_spec
from tests.integration.helpers import (
    cli_env,
    finished_rows,
    hq,
    poll,
    process_gone,
    start_detached_controller,
    write_sweep,
)

pytestmark = pytest.mark.integration
optuna.logging.set_verbosity(optuna.logging.WARNING)

CONDITIONAL = """
def objective(trial):
    if trial.suggest_categorical("model", ["svm", "rf"]) == "svm":
        c = trial.suggest_float("c", 1e-3, 1e3, log=True)
        assert trial.suggest_float("c", 1e-3, 1e3, log=True) == c  # asked again: the same
        return (c - 1.0) ** 2
    depth = trial.suggest_int("depth", 2, 8)
    return float(depth) + trial.suggest_float("x", -1.0, 1.0)
"""


def _objective(tmp_path: Path, code: str, name: str) -> Any:
    path = tmp_path / f"{name}.py"
    path.write_text(code)
    namespace: dict[str, Any] = {}
    exec(compile(code, str(path), "exec"), namespace)
    return namespace["objective"]


def _run(tmp_path: Path, redis_url: str, name: str, body: dict[str, Any],
         workers: int = 1, presample: str = "auto") -> subprocess.CompletedProcess[str]:
    worker = {"module": f"{name}.py", "presample": presample}
    spec = write_sweep(tmp_path, {"name": name, "worker": worker, **body}, name=f"{name}.yaml")
    result = hq(["run", str(spec), "--workers", str(workers)], cli_env(redis_url, tmp_path))
    assert result.returncode == 0, result.stderr
    return result


@pytest.mark.parametrize("method", ["random", "bayes"])
@pytest.mark.timeout(120)
def test_a_conditional_space_without_parameters_matches_optuna_in_memory(
        redis_url: str, tmp_path: Path, method: str) -> None:
    """A seed, one worker, each name sampled as the objective asks (`presample: never`): the
    very params (and values) Optuna gives in one process, for random and for TPE as
    hq-sweep configures it (multivariate, constant liar)."""
    objective = _objective(tmp_path, CONDITIONAL, "cond")
    body = {"method": method, "seed": 11, "run_cap": 30}
    if method == "bayes":
        body["metric"] = {"name": "value", "goal": "minimize"}
    _run(tmp_path, redis_url, "cond", body, presample="never")
    rows = finished_rows(redis_url, "cond")
    sampler = (optuna.samplers.RandomSampler(seed=11) if method == "random" else
               optuna.samplers.TPESampler(seed=11, multivariate=True, constant_liar=True))
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=30)
    assert [r["params"] for r in rows] == [t.params for t in study.trials]
    assert [r["values"] for r in rows] == [t.values for t in study.trials]
    assert {r["params"]["model"] for r in rows} == {"svm", "rf"}
    assert all(r["state"] == "complete" for r in rows)


INT_LOG_STEP = """
def objective(trial):
    n = trial.suggest_int("n", 1, 9, step=2)
    k = trial.suggest_int("k", 1, 1000, log=True)
    f = trial.suggest_float("f", 0.0, 1.0, step=0.25)
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    assert type(n) is int and type(k) is int and type(f) is float and type(lr) is float
    assert trial.params["n"] == n and set(trial.distributions) >= {"n", "k", "f", "lr"}
    return n + k / 1000 + f + lr
"""


@pytest.mark.timeout(120)
def test_int_log_and_step_distributions_land_within_bounds_and_on_the_grid(
        redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "ils.py").write_text(INT_LOG_STEP)
    _run(tmp_path, redis_url, "ils", {"method": "bayes", "metric": {"name": "v", "goal":
         "minimize"}, "seed": 1, "run_cap": 24, "parameters": {"extra": {"value": 3}}},
         workers=2)
    rows = finished_rows(redis_url, "ils")
    assert len(rows) == 24 and all(r["state"] == "complete" for r in rows), rows
    for row in rows:
        p = row["params"]
        assert p["extra"] == 3  # a declared constant beside the define-by-run ones
        assert p["n"] in (1, 3, 5, 7, 9) and 1 <= p["k"] <= 1000 and isinstance(p["k"], int)
        assert p["f"] in (0.0, 0.25, 0.5, 0.75, 1.0) and 1e-5 <= p["lr"] <= 1e-1
    records = SweepQueue(connect(redis_url), "ils").trials.load_records(24)
    stored = {name: json_to_distribution(text)
              for name, text in (records[0].distributions or {}).items()}
    assert stored == {"n": IntDistribution(1, 9, step=2), "k": IntDistribution(1, 1000, log=True),
                      "f": FloatDistribution(0.0, 1.0, step=0.25),
                      "lr": FloatDistribution(1e-5, 1e-1, log=True)}


CLASH = """
def objective(trial):
    if trial.number == 3:
        return float(trial.suggest_int("x", 0, 5))  # x was a float in earlier trials
    x = trial.suggest_float("x", 0.0, 1.0)
    if trial.number == 5:
        trial.suggest_categorical("x", ["a", "b"])  # in this very trial: local check
    return x
"""


@pytest.mark.timeout(120)
def test_the_same_name_with_another_distribution_fails_only_that_trial(
        redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "clash.py").write_text(CLASH)
    _run(tmp_path, redis_url, "clash", {"method": "random", "seed": 2, "run_cap": 8})
    rows = finished_rows(redis_url, "clash")
    failed = {r["number"]: r["reason"] for r in rows if r["state"] == "failed"}
    assert sorted(failed) == [3, 5], rows
    assert all(r["state"] == "complete" for r in rows if r["number"] not in failed)
    with pytest.raises(ValueError) as optunas:  # Optuna's own message, as in one process
        check_distribution_compatibility(FloatDistribution(0.0, 1.0), IntDistribution(0, 5))
    assert f"ValueError: {optunas.value}" in failed[3] and "clash.py" in failed[3]
    assert f"ValueError: {optunas.value}" in failed[5]
    assert "x" not in rows[3]["params"]  # the study refused it: nothing recorded


KILLED = """
import json, os, pathlib, time

OUT = pathlib.Path(os.environ["DBR_OUT"])

def objective(trial):
    seen = {"x": trial.suggest_float("x", 0.0, 1.0), "n": trial.suggest_int("n", 0, 100),
            "attempt": trial.attempt}
    if trial.number == 0 and trial.attempt == 1:
        (OUT / "first.json").write_text(json.dumps(seen))
        time.sleep(600)  # killed here
    if trial.number == 0:
        seen["later"] = trial.suggest_float("later", 0.0, 1.0)  # a new name still samples
        (OUT / "second.json").write_text(json.dumps(seen))
    return seen["x"]
"""


@pytest.mark.timeout(120)
def test_a_worker_killed_mid_trial_requeues_it_with_the_params_already_sampled(
        redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "killed.py").write_text(KILLED)
    spec = write_sweep(tmp_path, {"name": "killed", "method": "random", "run_cap": 3,
                                  "lease": 1, "worker": {"module": "killed.py"}})
    env = cli_env(redis_url, tmp_path, DBR_OUT=str(tmp_path))
    controller = start_detached_controller(spec, "killed", env)
    worker = subprocess.Popen([sys.executable, "-m", "hq_sweep", "worker", "--sweep", "killed"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        poll(lambda: (tmp_path / "first.json").exists(), 60, "the first attempt to sample")
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        again = hq(["worker", "--sweep", "killed"], env, timeout=90)
        assert again.returncode == 0, again.stderr
    finally:
        if worker.poll() is None:
            worker.kill()
        with contextlib.suppress(ProcessLookupError):  # it ends with the sweep, may be gone
            os.kill(controller, signal.SIGKILL)
        poll(lambda: process_gone(controller), 10, "the controller to go")
    first = json.loads((tmp_path / "first.json").read_text())
    second = json.loads((tmp_path / "second.json").read_text())
    assert (second["x"], second["n"]) == (first["x"], first["n"]) and second["attempt"] >= 2
    row = finished_rows(redis_url, "killed")[0]
    assert row["state"] == "complete" and row["attempt"] == second["attempt"]
    assert row["params"] == {"x": first["x"], "n": first["n"], "later": second["later"]}
    assert math.isclose(row["values"][0], first["x"])


@pytest.mark.timeout(60)
def test_a_restarted_controller_restores_define_by_run_trials_with_their_distributions(
        redis_url: str) -> None:
    spec = parse_spec({"name": "rb", "method": "random", "seed": 5, "worker": "obj.py",
                       "parameters": {"lr": {"min": 0.0, "max": 1.0}}})
    connection = connect(redis_url)
    queue = SweepQueue(connection, SweepRegistry(connection).create("rb", "{}", "h", "/"))
    first = Controller(queue, spec, ControllerOptions(wait_s=0.0))
    first.step()  # asks ahead
    claims = queue.trials.claim("w", 4, lease_s=30)
    assert len(claims) == 3  # one worker: three asked ahead
    asked = [("model", CategoricalDistribution(["a", "b"])),
             ("depth", IntDistribution(1, 9, step=2)),
             ("c", FloatDistribution(1e-3, 1.0, log=True))]
    for claim in claims:
        for name, distribution in asked:
            request = SuggestRequest(claim.task.number, claim.attempt, name,
                                     distribution_to_json(distribution))
            queue.suggests.request(request)
            first.step()
            answer = queue.suggests.await_answer(request, 5)
            assert answer is not None and not answer.stale and answer.error is None, answer
    stale = SuggestRequest(claims[0].task.number, claims[0].attempt + 1, "model",
                           distribution_to_json(asked[0][1]))
    queue.suggests.request(stale)
    first.step()
    assert queue.suggests.await_answer(stale, 5) == SuggestAnswer("model", stale=True)
    queue.trials.finish([Finish(TrialOutcome(c.task.number, c.attempt, TrialState.COMPLETE,
                                             [1.0]), time.time()) for c in claims[:2]])
    first.step()  # two told, two still running
    restored = OptunaAskTell(spec, "rb")
    restored.restore(read_history(queue, False), lambda: None)

    def shown(study: optuna.Study) -> list[Any]:
        return [(t.params, t.distributions, t.state) for t in study.get_trials(deepcopy=False)]

    assert isinstance(first.strategy, OptunaAskTell)
    assert shown(restored.study) == shown(first.strategy.study)
    last = claims[-1]  # still running: asked again with its sampled params fixed
    assert set(shown(restored.study)[last.task.number][0]) == {"lr", "model", "depth", "c"}
    again = SuggestRequest(last.task.number, last.attempt, "depth",
                           distribution_to_json(asked[1][1]))
    depth = shown(first.strategy.study)[last.task.number][0]["depth"]
    assert restored.suggest(again).answer.value == depth


@pytest.mark.timeout(120)
def test_sampled_ahead_a_conditional_space_records_only_what_each_trial_asked(
        redis_url: str, tmp_path: Path) -> None:
    """`presample: always`, two workers: names every finished trial asked (model) come with
    the task; those some trials ask (c; depth and x) are asked; a trial's record and the
    study hold exactly the names its objective asked."""
    _objective(tmp_path, CONDITIONAL, "ahead")
    _run(tmp_path, redis_url, "ahead", {"method": "bayes", "seed": 4, "run_cap": 40,
                                        "metric": {"name": "value", "goal": "minimize"}},
         workers=2, presample="always")
    rows = finished_rows(redis_url, "ahead")
    assert len(rows) == 40 and all(r["state"] == "complete" for r in rows), rows
    for row in rows:
        expected = {"model", "c"} if row["params"]["model"] == "svm" else {"model", "depth", "x"}
        assert set(row["params"]) == expected, row
    records = SweepQueue(connect(redis_url), "ahead").trials.load_records(40)
    assert all(set(r.distributions or {}) == set(r.params or {}) for r in records)


SPHERE = """
def objective(trial):
    return sum((trial.suggest_float(f"x{i}", -5.0, 5.0) - 1.0 - 0.5 * i) ** 2 for i in range(4))
"""


@pytest.mark.timeout(120)
def test_tpe_sampled_ahead_learns_from_results_as_it_goes(redis_url: str, tmp_path: Path) -> None:
    """No-op trials, two workers, sampled ahead: TPE is asked at most two trials per worker
    ahead of the results (asked further it samples blind: all 60 asked after 4 results is
    random search), and it beats random search with the same budget."""
    objective = _objective(tmp_path, SPHERE, "sphere")
    _run(tmp_path, redis_url, "sphere", {"method": "bayes", "seed": 3, "run_cap": 60,
                                         "metric": {"name": "value", "goal": "minimize"}},
         workers=2)
    records = SweepQueue(connect(redis_url), "sphere").trials.load_records(60)
    assert all(r.state is TrialState.COMPLETE for r in records)
    ends = sorted(r.ended_at or math.inf for r in records)
    for record in records:
        known = sum(end < (record.queued_at or 0.0) for end in ends)
        assert known >= record.number - 2 * 2, (record.number, known)
    random_search = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    random_search.optimize(objective, n_trials=60)
    best = min(v for r in records for v in r.values or [])
    assert best < random_search.best_value, (best, random_search.best_value)
