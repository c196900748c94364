"""Define-by-run overhead: no-op trials with 5 float params, 2 workers, side by side.

- declared: the 5 params under `parameters:` (the controller samples them when it asks);
- define-by-run, sampled ahead: no `parameters:`, the objective calls `trial.suggest_float`
  5 times; `presample: auto` (the default) samples them with the task once a trial has
  finished, so only the first trials ask;
- define-by-run, asked: `presample: never`, each suggest a round trip to the controller;
- Optuna in memory, one process, the same objective (the ceiling);
- Optuna's own distributed mode: `--workers` processes on one JournalRedis study, the same
  objective, served by the same kind of server hq-sweep uses.

Usage: python scripts/bench_define_by_run.py [--trials 2000] [--workers 2] [--repeats 3]
Trials/s counts from the first trial's start to the last trial's end; medians at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import yaml
from bench_common import epoch, journal_rate

NAMES = ("a", "b", "c", "d", "e")
DEFINE_BY_RUN = """
def objective(trial):
    return sum(trial.suggest_float(name, -1.0, 1.0) ** 2 for name in ("a", "b", "c", "d", "e"))
"""
DECLARED = """
def objective(trial, state):
    return sum(trial.params[name] ** 2 for name in ("a", "b", "c", "d", "e"))
"""


def sweep_file(folder: Path, presample: str | None, trials: int) -> Path:
    """presample None: the declared space; else define-by-run with that policy."""
    declared = presample is None
    (folder / "obj.py").write_text(DECLARED if declared else DEFINE_BY_RUN)
    worker: dict[str, str] = {"module": "obj.py"}
    if presample is not None:
        worker["presample"] = presample
    body: dict[str, object] = {
        "name": "declared" if declared else "define-by-run", "method": "random",
        "metric": {"name": "loss", "goal": "minimize"}, "run_cap": trials,
        "sampler": {"name": "random", "seed": 0}, "worker": worker}
    if declared:
        body["parameters"] = {name: {"min": -1.0, "max": 1.0} for name in NAMES}
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def hq_rate(presample: str | None, trials: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {**os.environ, "HQ_SWEEP_STATE_DIR": str(folder / "state")}
        env.pop("HQ_SWEEP_REDIS_URL", None)
        spec = sweep_file(folder, presample, trials)
        hq = [sys.executable, "-m", "hq_sweep"]
        try:
            done = subprocess.run([*hq, "run", str(spec), "--workers", str(workers), "--json"],
                                  env=env, check=True, capture_output=True, text=True)
            sweep = json.loads(done.stdout)["sweep"]
            rows = json.loads(subprocess.run(
                [*hq, "export", "--format", "json", "--flat", "--sweep", sweep], env=env,
                check=True, capture_output=True, text=True).stdout)
        finally:
            subprocess.run([*hq, "server", "stop"], env=env, capture_output=True)
    complete = [r for r in rows if r["state"] == "complete"]
    assert len(complete) == trials, f"{len(complete)} of {trials} trials complete"
    first = min(epoch(r["started_at"]) for r in complete)
    return len(complete) / (max(epoch(r["ended_at"]) for r in complete) - first)


def optuna_rate(trials: int) -> float:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    started = time.perf_counter()
    study.optimize(lambda t: sum(t.suggest_float(n, -1.0, 1.0) ** 2 for n in NAMES),
                   n_trials=trials)
    return trials / (time.perf_counter() - started)


JOURNAL_CHILD = """
import os, warnings, optuna
warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalRedisBackend
optuna.logging.set_verbosity(optuna.logging.WARNING)
storage = JournalStorage(JournalRedisBackend(os.environ["BENCH_REDIS_URL"]))
study = optuna.load_study(study_name="dbr", storage=storage,
                          sampler=optuna.samplers.RandomSampler())
study.optimize(lambda t: sum(t.suggest_float(n, -1.0, 1.0) ** 2 for n in "abcde"),
               n_trials=int(os.environ["BENCH_TRIALS"]))
"""


KINDS = {"declared": None, "define-by-run, sampled ahead": "auto",
         "define-by-run, asked": "never"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rates: dict[str, list[float]] = {name: [] for name in [*KINDS, "optuna in memory",
                                                           "optuna JournalRedis"]}
    for repeat in range(args.repeats):
        for name, presample in KINDS.items():
            rates[name].append(hq_rate(presample, args.trials, args.workers))
        rates["optuna in memory"].append(optuna_rate(args.trials))
        rates["optuna JournalRedis"].append(
            journal_rate(JOURNAL_CHILD, "dbr", args.trials, args.workers))
        print(f"repeat {repeat + 1}: " + ", ".join(
            f"{name} {values[-1]:,.0f}" for name, values in rates.items()) + " trials/s",
            flush=True)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    declared = medians["declared"]
    print(f"median, {args.workers} workers, {args.trials} no-op trials of 5 params "
          f"({args.repeats} repeats):")
    for name, rate in medians.items():
        extra = (1 / rate - 1 / declared) * 1000 * args.workers
        print(f"  {name:<30} {rate:>7,.0f} trials/s  {rate / declared:5.2f} x declared  "
              f"{extra:+6.2f} ms per trial per worker")


if __name__ == "__main__":
    main()
