"""Define-by-run overhead: no-op trials with 5 float params, 2 workers, side by side.

- declared: the 5 params under `parameters:` (the controller samples them when it asks);
- define-by-run: no `parameters:`, the objective calls `trial.suggest_float` 5 times, each
  a round trip to the controller (issue 12: pre-sampling would remove most of them);
- Optuna in memory, one process, the same objective (the ceiling).

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
from datetime import datetime
from pathlib import Path

import optuna
import yaml

NAMES = ("a", "b", "c", "d", "e")
DEFINE_BY_RUN = """
def objective(trial):
    return sum(trial.suggest_float(name, -1.0, 1.0) ** 2 for name in ("a", "b", "c", "d", "e"))
"""
DECLARED = """
def objective(trial, state):
    return sum(trial.params[name] ** 2 for name in ("a", "b", "c", "d", "e"))
"""


def sweep_file(folder: Path, declared: bool, trials: int) -> Path:
    (folder / "obj.py").write_text(DECLARED if declared else DEFINE_BY_RUN)
    body: dict[str, object] = {
        "name": "declared" if declared else "define-by-run", "method": "random",
        "metric": {"name": "loss", "goal": "minimize"}, "run_cap": trials,
        "sampler": {"name": "random", "seed": 0}, "worker": {"module": "obj.py"}}
    if declared:
        body["parameters"] = {name: {"min": -1.0, "max": 1.0} for name in NAMES}
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(body))
    return path


def hq_rate(declared: bool, trials: int, workers: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = {**os.environ, "HQ_SWEEP_STATE_DIR": str(folder / "state")}
        env.pop("HQ_SWEEP_REDIS_URL", None)
        spec = sweep_file(folder, declared, trials)
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
    first = min(_epoch(r["started_at"]) for r in complete)
    return len(complete) / (max(_epoch(r["ended_at"]) for r in complete) - first)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def optuna_rate(trials: int) -> float:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    started = time.perf_counter()
    study.optimize(lambda t: sum(t.suggest_float(n, -1.0, 1.0) ** 2 for n in NAMES),
                   n_trials=trials)
    return trials / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    declared, by_run, in_memory = [], [], []
    for repeat in range(args.repeats):
        declared.append(hq_rate(True, args.trials, args.workers))
        by_run.append(hq_rate(False, args.trials, args.workers))
        in_memory.append(optuna_rate(args.trials))
        print(f"repeat {repeat + 1}: declared {declared[-1]:,.0f} trials/s, define-by-run "
              f"{by_run[-1]:,.0f} trials/s, optuna in-memory {in_memory[-1]:,.0f} trials/s",
              flush=True)
    d, b, m = (statistics.median(x) for x in (declared, by_run, in_memory))
    print(f"median, {args.workers} workers, {args.trials} trials of 5 params: declared "
          f"{d:,.0f} trials/s; define-by-run {b:,.0f} trials/s (ratio {b / d:.2f}, "
          f"{(1 / b - 1 / d) * 1000 * args.workers:.1f} ms more per trial per worker); "
          f"optuna in-memory {m:,.0f} trials/s")


if __name__ == "__main__":
    main()
