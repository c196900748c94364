"""Define-by-run quality: does hq-sweep's TPE find what Optuna's finds in memory?

Sampling ahead (`presample: auto`) and two workers mean each trial is sampled knowing
fewer finished trials than in one process (the constant liar stands in for those running),
so the sequence differs from Optuna's by design; what must not differ is the result. For
each seed and objective: the best value after `--trials` trials from

- Optuna in memory, one process, TPE as hq-sweep sets it up (multivariate, constant liar);
- hq-sweep, the same objective unchanged, define-by-run, `--workers` workers, sampled ahead;
- Optuna in memory with random search (the floor TPE must beat).

Medians over seeds, and a two-sided Mann-Whitney U test of hq-sweep against Optuna (a large
p: no evidence they differ).

Usage: python scripts/bench_define_by_run_quality.py [--seeds 10] [--trials 80] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
import yaml
from scipy.stats import mannwhitneyu

OBJECTIVES = {
    # A shifted 5-d sphere: a fixed space, sampled ahead after the first trial.
    "sphere": """
def objective(trial):
    return sum((trial.suggest_float(f"x{i}", -5.0, 5.0) - 1.0 - 0.5 * i) ** 2 for i in range(5))
""",
    # A conditional space: a log-scaled, an integer and a stepped parameter, 2 or 4 deep.
    "conditional": """
import math

def objective(trial):
    if trial.suggest_categorical("model", ["linear", "tree"]) == "linear":
        c = trial.suggest_float("c", 1e-4, 1e2, log=True)
        l1 = trial.suggest_float("l1", 0.0, 1.0)
        return (math.log10(c) - 0.5) ** 2 + (l1 - 0.7) ** 2 + 0.5
    depth = trial.suggest_int("depth", 1, 32)
    rate = trial.suggest_float("rate", 0.0, 1.0)
    frac = trial.suggest_float("frac", 0.0, 1.0, step=0.05)
    leaves = trial.suggest_int("leaves", 2, 256, log=True)
    return ((depth - 21) / 8) ** 2 + (rate - 0.2) ** 2 + (frac - 0.65) ** 2 \
        + math.log2(leaves / 40) ** 2 / 16
""",
}


def load(code: str) -> Callable[[optuna.trial.Trial], float]:
    namespace: dict[str, Any] = {}
    exec(compile(code, "<objective>", "exec"), namespace)
    return namespace["objective"]  # type: ignore[no-any-return]


def optuna_best(code: str, seed: int, trials: int, sampler: str) -> float:
    chosen = (optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True)
              if sampler == "tpe" else optuna.samplers.RandomSampler(seed=seed))
    study = optuna.create_study(sampler=chosen)
    study.optimize(load(code), n_trials=trials)
    return study.best_value


def hq_best(code: str, seed: int, trials: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "obj.py").write_text(code)
        spec = folder / "sweep.yaml"
        spec.write_text(yaml.safe_dump({
            "name": "quality", "method": "bayes", "seed": seed, "run_cap": trials,
            "metric": {"name": "value", "goal": "minimize"}, "worker": {"module": "obj.py"}}))
        env = {**os.environ, "HQ_SWEEP_STATE_DIR": str(folder / "state")}
        env.pop("HQ_SWEEP_REDIS_URL", None)
        hq = [sys.executable, "-m", "hq_sweep"]
        try:
            done = subprocess.run([*hq, "run", str(spec), "--workers", str(workers), "--json"],
                                  env=env, check=True, capture_output=True, text=True)
        finally:
            subprocess.run([*hq, "server", "stop"], env=env, capture_output=True)
    return float(json.loads(done.stdout)["best"]["value"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--trials", type=int, default=80)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name, code in OBJECTIVES.items():
        best: dict[str, list[float]] = {"optuna TPE": [], "hq-sweep TPE": [], "optuna random": []}
        for seed in range(args.seeds):
            best["optuna TPE"].append(optuna_best(code, seed, args.trials, "tpe"))
            best["hq-sweep TPE"].append(hq_best(code, seed, args.trials, args.workers))
            best["optuna random"].append(optuna_best(code, seed, args.trials, "random"))
        p = mannwhitneyu(best["hq-sweep TPE"], best["optuna TPE"]).pvalue
        print(f"{name}: median best over {args.seeds} seeds, {args.trials} trials "
              f"(hq-sweep: {args.workers} workers, sampled ahead): " + ", ".join(
                  f"{kind} {statistics.median(values):.4f}" for kind, values in best.items())
              + f"; hq-sweep vs optuna TPE: Mann-Whitney p = {p:.2f}", flush=True)


if __name__ == "__main__":
    main()
