"""Reading a big sweep: a monitor snapshot and `export` of 100,000 finished trials.

The records are written straight into a private server (as finished trials of a sweep with
3 params, 8 intermediate values each), then: the monitor's snapshot (kept counters and a few
records, never a scan: it must stay under 100 ms), and `export` as CSV, JSON and Parquet
(every record and its intermediate values, pipelined: seconds, not minutes).

Usage: python scripts/bench_results_scale.py [--trials 100000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from hq_sweep.messages import TrialRecord, TrialState
from hq_sweep.queue.client import connect
from hq_sweep.queue.registry import SweepRegistry
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.results.monitor import RateMeter, take_snapshot
from hq_sweep.results.parquet import write_parquet
from hq_sweep.results.summary import to_csv, trial_rows
from hq_sweep.server.embedded import EmbeddedServer
from hq_sweep.spec.sweep import parse_spec

SPEC = {"name": "big", "method": "random", "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"x": {"min": 0.0, "max": 1.0}, "n": {"min": 1, "max": 9},
                       "opt": {"values": ["sgd", "adam"]}}}


def fill(queue: SweepQueue, trials: int) -> None:
    rng = random.Random(0)
    connection, keys = queue.connection, queue.keys
    for start in range(0, trials, 5000):
        pipe = connection.pipeline(transaction=False)
        for number in range(start, min(start + 5000, trials)):
            loss = rng.random()
            record = TrialRecord(number, TrialState.COMPLETE, attempt=1, worker="w0",
                                 params={"x": rng.random(), "n": rng.randint(1, 9),
                                         "opt": rng.choice(["sgd", "adam"])},
                                 queued_at=1e9, started_at=1e9 + number, ended_at=1e9 + number,
                                 duration=0.01, values=[loss])
            pipe.hset(keys.trial(number), mapping=record.to_hash())  # type: ignore[arg-type]
            pipe.hset(keys.intermediate(number),
                      mapping={str(step): loss + 1 / (step + 1) for step in range(8)})
        pipe.execute()
    connection.hset(keys.part("counts"), "complete", trials)
    queue.meta.set_best({"number": 0, "value": 0.0, "params": {}})
    connection.hset(keys.meta, mapping={"next": trials, "state": "finished",
                                        "finished_at": time.time()})


def timed(what: str, action: object, repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        began = time.perf_counter()
        action()  # type: ignore[operator]
        runs.append(time.perf_counter() - began)
    median = statistics.median(runs)
    print(f"  {what:<28} median {median * 1000:10.1f} ms over {repeats} runs", flush=True)
    return median


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with EmbeddedServer() as server, tempfile.TemporaryDirectory() as tmp:
        connection = connect(server.url)
        spec = parse_spec(SPEC)
        sweep = SweepRegistry(connection).create("big", json.dumps(spec.to_json_dict()),
                                                 spec.spec_hash(), "/")
        queue = SweepQueue(connection, sweep)
        began = time.perf_counter()
        fill(queue, args.trials)
        print(f"{args.trials:,} finished trials written in {time.perf_counter() - began:.1f} s")
        timed("monitor snapshot", lambda: take_snapshot(queue, RateMeter(), args.trials, 0.0),
              args.repeats * 4)
        rows = trial_rows(queue, flat=True)
        timed("export: read every trial", lambda: trial_rows(queue, flat=True), args.repeats)
        timed("export: CSV text", lambda: to_csv(rows), args.repeats)
        timed("export: JSON text", lambda: json.dumps(rows, indent=1), args.repeats)
        timed("export: Parquet file", lambda: write_parquet(rows, Path(tmp) / "t.parquet"),
              args.repeats)


if __name__ == "__main__":
    main()
