"""Helpers for end-to-end tests: sweep files, the CLI as a subprocess, polling."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from hq_sweep.queue.client import connect
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.results.summary import trial_rows


def write_sweep(tmp_path: Path, body: dict[str, Any], name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(body))
    return path


def cli_env(redis_url: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "HQ_SWEEP_REDIS_URL": redis_url,
            "HQ_SWEEP_STATE_DIR": str(tmp_path / "state"), **extra}


def hq(args: list[str], env: dict[str, str],
       timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hq_sweep", *args], env=env, text=True,
                          capture_output=True, timeout=timeout)


def start_detached_controller(spec: Path, sweep: str, env: dict[str, str]) -> int:
    """`hq-sweep enqueue SPEC --sweep SWEEP --detach`; the background controller's pid."""
    started = hq(["enqueue", str(spec), "--sweep", sweep, "--detach"], env)
    found = re.search(r"pid (\d+)", started.stderr)
    assert started.returncode == 0 and found is not None, started.stderr
    return int(found.group(1))


def poll(condition: Callable[[], bool], timeout: float, what: str,
         context: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{context()[-3000:]}")
        time.sleep(0.05)


def finished_rows(redis_url: str, sweep: str) -> list[dict[str, Any]]:
    """The sweep's trials as `export --flat` shows them (params by dotted name)."""
    return trial_rows(SweepQueue(connect(redis_url), sweep), flat=True)




def process_gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie counts: it runs no more code)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"
