"""What reporting costs: no-op trials with 0 vs 10 intermediate reports each, side by side.

Runs examples/noop.yaml (random, 2 workers) with `objective` and with
`objective_with_reports`, alternating, `--repeats` times each, and prints trials/s (first
trial start to last trial end) with medians and the ratio. `--pruner median` feeds the
reports to a pruner as well (the controller then decides on every trial).

Usage: python scripts/bench_reports.py [--trials 5000] [--repeats 3] [--pruner NAME]
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

import yaml

ROOT = Path(__file__).resolve().parent.parent


def rate(objective: str, trials: int, pruner: str | None, state: Path, tag: str) -> float:
    spec = yaml.safe_load((ROOT / "examples" / "noop.yaml").read_text())
    spec.update(name=f"reports-{tag}", run_cap=trials,
                worker={"module": str(ROOT / "workers" / "noop.py"), "objective": objective})
    if pruner:
        spec["pruner"] = {"name": pruner}
    path = state / f"{tag}.yaml"
    path.write_text(yaml.safe_dump(spec))
    env = {**os.environ, "HQ_SWEEP_STATE_DIR": str(state)}
    env.pop("HQ_SWEEP_REDIS_URL", None)
    hq = [sys.executable, "-m", "hq_sweep"]
    sweep = json.loads(subprocess.run([*hq, "run", str(path), "--workers", "2", "--json"],
                                      env=env, check=True, capture_output=True,
                                      text=True).stdout)["sweep"]
    rows = json.loads(subprocess.run([*hq, "export", "--format", "json", "--sweep", sweep],
                                     env=env, check=True, capture_output=True, text=True).stdout)
    first = min(r["started_at"] for r in rows)
    last = max(r["ended_at"] for r in rows)
    return len(rows) / (last - first)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pruner", default=None)
    args = parser.parse_args()
    plain: list[float] = []
    reported: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for repeat in range(args.repeats):
                # Alternate which goes first: each run adds to the same server's data, so a
                # fixed order would bias the later one.
                order = ["objective", "objective_with_reports"][:: 1 if repeat % 2 == 0 else -1]
                rates = {name: rate(name, args.trials, args.pruner, Path(tmp),
                                    f"{name}-{repeat}") for name in order}
                plain.append(rates["objective"])
                reported.append(rates["objective_with_reports"])
                print(f"repeat {repeat + 1}: 0 reports {plain[-1]:,.0f} trials/s, "
                      f"10 reports {reported[-1]:,.0f} trials/s", flush=True)
        finally:
            subprocess.run([sys.executable, "-m", "hq_sweep", "server", "stop"],
                           env={**os.environ, "HQ_SWEEP_STATE_DIR": tmp}, capture_output=True)
    a, b = statistics.median(plain), statistics.median(reported)
    paired = statistics.median(p / r - 1 for p, r in zip(plain, reported, strict=True))
    print(f"median: 0 reports {a:,.0f} trials/s, 10 reports {b:,.0f} trials/s: "
          f"10 reports cost {(a / b - 1):+.1%} per trial (median of the paired runs: "
          f"{paired:+.1%}; pruner: {args.pruner or 'none'})")


if __name__ == "__main__":
    main()
