"""Pruning on real training curves: best accuracy and total epochs, with and without pruning.

Runs examples/digits_pruned.yaml (TPE, 200 trials of up to 15 epochs, 2 workers) with no
pruner, ASHA, Optuna's Hyperband and W&B's early_terminate hyperband, for 3 sampler seeds
each, side by side, and
prints per-run figures and medians. Total epochs = intermediate values reported, summed over
trials (what training actually ran).

Usage: python scripts/bench_pruning.py [--seeds 0 1 2] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
VARIANTS: dict[str, dict[str, Any]] = {
    "none": {},
    "asha": {"pruner": {"name": "successive_halving",
                        "options": {"min_resource": 1, "reduction_factor": 3}}},
    "hyperband": {"pruner": {"name": "hyperband",
                             "options": {"min_resource": 1, "max_resource": 15,
                                         "reduction_factor": 3}}},
    "wandb-hyperband": {"early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 3}},
}


def base_spec() -> dict[str, Any]:
    spec: dict[str, Any] = yaml.safe_load((ROOT / "examples" / "digits_pruned.yaml").read_text())
    return spec


def unpruned_epochs() -> int:
    spec = base_spec()
    return int(spec["parameters"]["epochs"]["value"]) * int(spec["run_cap"])


def run_variant(name: str, seed: int, workers: int, state: Path) -> dict[str, float]:
    spec = base_spec()
    spec.pop("pruner", None)
    spec.update(VARIANTS[name])
    spec["name"] = f"digits-{name}-s{seed}"
    spec["sampler"] = {"name": "tpe", "seed": seed}
    spec["worker"] = str(ROOT / "workers" / "digits.py")
    path = state / f"{spec['name']}.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "HQ_SWEEP_STATE_DIR": str(state)}
    env.pop("HQ_SWEEP_REDIS_URL", None)
    out = subprocess.run([sys.executable, "-m", "hq_sweep", "run", str(path), "--workers",
                          str(workers), "--json"], env=env, check=True, capture_output=True,
                         text=True)
    summary = json.loads(out.stdout)
    rows = json.loads(subprocess.run(
        [sys.executable, "-m", "hq_sweep", "export", "--format", "json", "--sweep",
         summary["sweep"]], env=env, check=True, capture_output=True, text=True).stdout)
    return {"best": summary["best"]["value"],
            "epochs": sum(len(r["intermediate_values"]) for r in rows),
            "pruned": summary["trials"]["pruned"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS),
                        help="which variants to run (default: all)")
    args = parser.parse_args()
    results: dict[str, list[dict[str, float]]] = {name: [] for name in args.variants}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for seed in args.seeds:
                for name in args.variants:
                    result = run_variant(name, seed, args.workers, Path(tmp))
                    results[name].append(result)
                    print(f"seed {seed} {name:16s} best {result['best']:.4f}  "
                          f"epochs {result['epochs']:5.0f}  pruned {result['pruned']:3.0f}",
                          flush=True)
        finally:
            subprocess.run([sys.executable, "-m", "hq_sweep", "server", "stop"],
                           env={**os.environ, "HQ_SWEEP_STATE_DIR": tmp}, capture_output=True)
    # Unpruned, every trial trains the full `epochs`: the base needs no run of its own.
    base = statistics.median(r["epochs"] for r in results["none"]) if "none" in results else (
        unpruned_epochs())
    print("\nmedians over seeds", args.seeds)
    print(f"{'variant':16s} {'best acc':>9s} {'epochs':>7s} {'of unpruned':>12s}")
    for name, runs in results.items():
        best = statistics.median(r["best"] for r in runs)
        epochs = statistics.median(r["epochs"] for r in runs)
        print(f"{name:16s} {best:9.4f} {epochs:7.0f} {epochs / base:11.0%}")


if __name__ == "__main__":
    main()
