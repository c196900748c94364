"""Amortization: warm workers vs one process per trial, for a 2 s setup and 20 ms trials.

Runs the same sweep (workers/warm_setup.py: setup() sleeps SETUP_S, each trial TRIAL_S) two
ways, side by side:

- hq-sweep: `hq-sweep run` with `--workers W`; setup() runs once per worker.
- process per trial, as one Slurm job or `python train.py` per trial would: a fresh Python
  process imports, runs setup() and one trial; W of them at a time (a sample of
  `--sampled` trials, since each costs seconds).

It prints the per-trial cost of each way, the speedup, and the speedup an overhead-free warm
worker would reach (every trial costs exactly TRIAL_S), medians over `--repeats`:

    ideal speedup    = process-per-trial cost / TRIAL_S
    measured speedup = process-per-trial cost / hq-sweep's steady per-trial cost
    efficiency       = measured / ideal

hq-sweep's steady per-trial cost is W / (trials per second from the first trial's start to the
last one's end); its whole run (server start, imports, setup included) is shown beside it.

Usage: python scripts/bench_amortization.py [--trials 1000] [--workers 2] [--repeats 3]
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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKER = ROOT / "workers" / "warm_setup.py"
SETUP_S, TRIAL_S = 2.0, 0.02
ONE_TRIAL = f"""
import importlib.util, sys
spec = importlib.util.spec_from_file_location("warm_setup", {str(WORKER)!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
import optuna  # what a per-trial job imports to get its parameters
state = module.setup()
class Trial:
    params = {{"x": 0.5}}
module.objective(Trial(), state)
"""


def env_for(state: Path) -> dict[str, str]:
    env = {**os.environ, "HQ_SWEEP_STATE_DIR": str(state),
           "BENCH_SETUP_S": str(SETUP_S), "BENCH_TRIAL_S": str(TRIAL_S)}
    env.pop("HQ_SWEEP_REDIS_URL", None)
    return env


def hq_sweep(trials: int, workers: int, state: Path, tag: str) -> tuple[float, float]:
    """(steady seconds per trial per worker, whole-run wall seconds)."""
    spec = {"name": f"amortize-{tag}", "method": "random", "run_cap": trials,
            "metric": {"name": "loss", "goal": "minimize"},
            "parameters": {"x": {"min": 0.0, "max": 1.0}},
            "worker": {"module": str(WORKER)}}
    path = state / f"{tag}.yaml"
    path.write_text(yaml.safe_dump(spec))
    hq = [sys.executable, "-m", "hq_sweep"]
    began = time.perf_counter()
    out = subprocess.run([*hq, "run", str(path), "--workers", str(workers), "--json"],
                         env=env_for(state), check=True, capture_output=True, text=True)
    wall = time.perf_counter() - began
    sweep = json.loads(out.stdout)["sweep"]
    rows = json.loads(subprocess.run([*hq, "export", "--format", "json", "--sweep", sweep],
                                     env=env_for(state), check=True, capture_output=True,
                                     text=True).stdout)
    span = max(r["ended_at"] for r in rows) - min(r["started_at"] for r in rows)
    return span * workers / len(rows), wall


def process_per_trial(sampled: int, workers: int, state: Path) -> float:
    """Seconds per trial per worker slot, one fresh process per trial."""
    def one(_: int) -> None:
        subprocess.run([sys.executable, "-c", ONE_TRIAL], env=env_for(state), check=True)

    began = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(sampled)))
    return (time.perf_counter() - began) * workers / sampled


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sampled", type=int, default=4)
    args = parser.parse_args()
    warm, walls, cold = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for repeat in range(args.repeats):
                per_trial, wall = hq_sweep(args.trials, args.workers, Path(tmp), str(repeat))
                warm.append(per_trial)
                walls.append(wall)
                cold.append(process_per_trial(args.sampled, args.workers, Path(tmp)))
                print(f"repeat {repeat + 1}: hq-sweep {warm[-1] * 1000:.1f} ms per trial "
                      f"(whole run {wall:.1f} s for {args.trials} trials), process per trial "
                      f"{cold[-1]:.2f} s per trial", flush=True)
        finally:
            subprocess.run([sys.executable, "-m", "hq_sweep", "server", "stop"],
                           env=env_for(Path(tmp)), capture_output=True)
    hot, slow = statistics.median(warm), statistics.median(cold)
    ideal, measured = slow / TRIAL_S, slow / hot
    print(f"median: hq-sweep {hot * 1000:.1f} ms per trial (whole run "
          f"{statistics.median(walls):.1f} s), process per trial {slow:.2f} s; speedup "
          f"{measured:.0f}x of an ideal {ideal:.0f}x: efficiency {measured / ideal:.0%} "
          f"(setup {SETUP_S:g} s, trials {TRIAL_S * 1000:g} ms, {args.workers} workers)")


if __name__ == "__main__":
    main()
