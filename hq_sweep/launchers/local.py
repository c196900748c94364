"""Local launcher: N worker processes on this machine, with the env a Slurm task would get.

The Redis URL (with its password) travels in the environment, never on the command line,
so it does not show in `ps`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from hq_sweep.env import local_worker_env

REDIS_URL_VAR = "HQ_SWEEP_REDIS_URL"


def worker_command(sweep_id: str | None, extra: Sequence[str] = ()) -> list[str]:
    command = [sys.executable, "-m", "hq_sweep", "worker"]
    if sweep_id is not None:
        command += ["--sweep", sweep_id]
    return [*command, *extra]


@dataclass
class LocalLauncher:
    """Starts and stops a fixed set of local worker processes."""

    count: int
    redis_url: str
    sweep_id: str | None
    log_dir: Path | None = None  # None: workers share this process's stdout/stderr
    extra_args: Sequence[str] = ()
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)
    _logs: list[IO[bytes]] = field(default_factory=list)

    def start(self) -> None:
        for rank in range(self.count):
            env = {
                **os.environ,
                **local_worker_env(rank, self.count),
                REDIS_URL_VAR: self.redis_url,
            }
            out: IO[bytes] | None = None
            if self.log_dir is not None:
                self.log_dir.mkdir(parents=True, exist_ok=True)
                out = open(self.log_dir / f"worker-{rank}.log", "ab")  # noqa: SIM115
                self._logs.append(out)
            self.processes.append(
                subprocess.Popen(
                    worker_command(self.sweep_id, self.extra_args),
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT if out else None,
                )
            )

    def alive(self) -> int:
        return sum(1 for p in self.processes if p.poll() is None)

    def wait(self, timeout_s: float | None) -> bool:
        """Wait for every worker to exit (None: however long); True if they all did in time."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for process in self.processes:
            try:
                process.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                return False
        return True

    def stop(self, grace_s: float = 10.0) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        if not self.wait(grace_s):
            for process in self.processes:
                if process.poll() is None:
                    process.kill()
            self.wait(5.0)
        for log_file in self._logs:
            log_file.close()

    def exit_codes(self) -> list[int | None]:
        return [p.poll() for p in self.processes]
