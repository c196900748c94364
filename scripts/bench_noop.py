"""No-op throughput: `hq-sweep run` with 2 workers vs Optuna, side by side.

Two Optuna baselines on the same search space: its in-memory loop in one process, and its
own distributed mode (one study in a JournalRedis storage, `--workers` processes asking and
telling; `--journal-trials` of them, 2,000 by default, as it runs a few hundred per second).

Usage: python scripts/bench_noop.py [--trials 5000] [--workers 2] [--repeats 3]
Prints per-repeat figures and medians. Trials/s counts from the first trial's start to the
last trial's end (what the workers and controller sustain), and wall time of the whole
command (server start, imports and setup included) is shown beside it. "late/early" is the
rate over the last quarter of trials divided by the rate over the first: about 1 when the
per-trial cost does not grow with the sweep (a cost linear in the trial count shows here).
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
from bench_common import epoch, journal_rate

from hq_sweep.controller.space import build_space
from hq_sweep.spec.sweep import load_spec

ROOT = Path(__file__).resolve().parent.parent


def late_over_early(ends: list[float]) -> float:
    """Finishing rate over the last quarter of trials over the rate over the first quarter."""
    ends = sorted(ends)
    quarter = len(ends) // 4
    early = ends[quarter] - ends[0]
    late = ends[-1] - ends[-1 - quarter]
    return early / late if late > 0 else float("nan")


def hq_run(trials: int, workers: int, state_dir: Path) -> tuple[float, float, float]:
    env = {**os.environ, "HQ_SWEEP_STATE_DIR": str(state_dir)}
    env.pop("HQ_SWEEP_REDIS_URL", None)
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "hq_sweep", "run", str(ROOT / "examples" / "noop.yaml"),
         "--workers", str(workers), "--trials", str(trials), "--json"],
        env=env, check=True, capture_output=True, text=True,
    )
    wall = time.perf_counter() - started
    sweep = json.loads(out.stdout)["sweep"]
    rows = json.loads(subprocess.run(
        [sys.executable, "-m", "hq_sweep", "export", "--format", "json", "--sweep", sweep],
        env=env, check=True, capture_output=True, text=True).stdout)
    first = min(epoch(r["started_at"]) for r in rows)
    ends = [epoch(r["ended_at"]) for r in rows]
    return len(rows) / (max(ends) - first), wall, late_over_early(ends)


def optuna_in_memory(trials: int) -> float:
    """Optuna alone, one process, the same search space as examples/noop.yaml."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = build_space(load_spec(ROOT / "examples" / "noop.yaml"))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    started = time.perf_counter()
    for _ in range(trials):
        trial = study.ask(space.distributions)
        study.tell(trial, float(trial.params["x"]))
    return trials / (time.perf_counter() - started)


JOURNAL_CHILD = """
import os, warnings, optuna
warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalRedisBackend
from hq_sweep.controller.space import build_space
from hq_sweep.spec.sweep import load_spec
optuna.logging.set_verbosity(optuna.logging.WARNING)
space = build_space(load_spec(os.environ["BENCH_SPEC"]))
storage = JournalStorage(JournalRedisBackend(os.environ["BENCH_REDIS_URL"]))
study = optuna.load_study(study_name="noop", storage=storage,
                          sampler=optuna.samplers.RandomSampler())
for _ in range(int(os.environ["BENCH_TRIALS"])):
    trial = study.ask(space.distributions)
    study.tell(trial, float(trial.params["x"]))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--journal-trials", type=int, default=2000)
    args = parser.parse_args()
    hq_rates, walls, optuna_rates, drifts, journal_rates = [], [], [], [], []
    for repeat in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            rate, wall, drift = hq_run(args.trials, args.workers, Path(tmp))
            subprocess.run([sys.executable, "-m", "hq_sweep", "server", "stop"],
                           env={**os.environ, "HQ_SWEEP_STATE_DIR": tmp}, capture_output=True)
            journal_rates.append(journal_rate(
                JOURNAL_CHILD, "noop", args.journal_trials, args.workers,
                {"BENCH_SPEC": str(ROOT / "examples" / "noop.yaml")}))
        hq_rates.append(rate)
        walls.append(wall)
        drifts.append(drift)
        optuna_rates.append(optuna_in_memory(args.trials))
        print(f"repeat {repeat + 1}: hq-sweep {rate:,.0f} trials/s (wall {wall:.1f} s, "
              f"late/early {drift:.2f}), "
              f"optuna in-memory {optuna_rates[-1]:,.0f} trials/s, "
              f"optuna journal-redis {journal_rates[-1]:,.0f} trials/s", flush=True)
    hq_median, opt_median = statistics.median(hq_rates), statistics.median(optuna_rates)
    journal_median = statistics.median(journal_rates)
    print(f"median: hq-sweep {hq_median:,.0f} trials/s with {args.workers} workers "
          f"(wall {statistics.median(walls):.1f} s for {args.trials} trials, "
          f"late/early {statistics.median(drifts):.2f}); "
          f"optuna in-memory {opt_median:,.0f} trials/s (ratio {hq_median / opt_median:.2f}); "
          f"optuna journal-redis with {args.workers} processes {journal_median:,.0f} trials/s "
          f"(ratio {hq_median / journal_median:.1f})")


if __name__ == "__main__":
    main()
