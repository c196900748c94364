"""What the benchmarks share: reading export's times, and Optuna's own distributed mode
(`workers` processes on one JournalRedis study) to measure against. Imported by the
scripts beside it (run as `python scripts/NAME.py`, their folder is on sys.path)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalRedisBackend

from hq_sweep.server.process import start_server, stop_server


def epoch(iso: str) -> float:
    """Seconds since the epoch of an ISO-8601 time as `export` writes it."""
    return datetime.fromisoformat(iso).timestamp()


def journal_rate(child: str, study_name: str, trials: int, workers: int,
                 env: Mapping[str, str] | None = None) -> float:
    """Trials/s of `workers` processes each running `child` (Python source that reads
    BENCH_REDIS_URL and BENCH_TRIALS) on one JournalRedis study, served by the same kind of
    server hq-sweep uses; from the first trial's start to the last trial's end, as for
    hq-sweep."""
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        info = start_server(Path(tmp))
        try:
            storage = JournalStorage(JournalRedisBackend(info.url))
            optuna.create_study(study_name=study_name, storage=storage)
            child_env = {**os.environ, **(env or {}), "BENCH_REDIS_URL": info.url,
                         "BENCH_TRIALS": str(trials // workers)}  # the password stays off ps
            children = [subprocess.Popen([sys.executable, "-c", child], env=child_env)
                        for _ in range(workers)]
            if any(child.wait() != 0 for child in children):
                raise RuntimeError("an Optuna journal process failed")
            done = optuna.load_study(study_name=study_name, storage=storage).trials
        finally:
            stop_server(info)
    first = min(t.datetime_start for t in done if t.datetime_start is not None)
    last = max(t.datetime_complete for t in done if t.datetime_complete is not None)
    return len(done) / (last - first).total_seconds()
