"""What hq-sweep's processes hold, read from /proc: for the tests that the Redis password stays
out of every environment, command line, output and log hq-sweep makes (issue 14).

`PROBE_PROGRAM` is a command-mode trial program: it records its own environment and argv and
its parent's (the worker that started it: `${env}` execs the interpreter) in
`$PROBE_DIR/<i>.json`, waits `$PROBE_PAUSE_S`, then reports `score`.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.integration.helpers import write_sweep

PROBE_PROGRAM = """
import json, os, sys, time
from pathlib import Path

params = json.loads(os.environ["HQ_SWEEP_PARAMS_JSON"])
parent = Path(f"/proc/{os.getppid()}")
record = {"environ": dict(os.environ), "argv": sys.argv,
          "worker_environ": (parent / "environ").read_bytes().decode(errors="replace"),
          "worker_cmdline": (parent / "cmdline").read_bytes().decode(errors="replace")}
out = Path(os.environ["PROBE_DIR"])
out.mkdir(exist_ok=True)
(out / f"{params['i']}.json").write_text(json.dumps(record))
time.sleep(float(os.environ.get("PROBE_PAUSE_S", "0.3")))
print("@hq-sweep " + json.dumps({"score": float(params["i"])}), flush=True)
"""
SERVER_VARS = ("HQ_SWEEP_REDIS_URL", "HQ_SWEEP_REDIS_URL_FILE", "HQ_SWEEP_CONNECTION_FILE")


def password(url: str) -> str:
    secret = urlsplit(url).password
    assert secret and len(secret) >= 32, "the test server must have a real password"
    return secret


def probe_sweep(tmp_path: Path, name: str, trials: int) -> Path:
    """A command-mode grid sweep of `trials` trials running PROBE_PROGRAM."""
    program = tmp_path / "probe.py"
    program.write_text(PROBE_PROGRAM)
    return write_sweep(tmp_path, {
        "name": name, "method": "grid", "program": str(program),
        "metric": {"name": "score", "goal": "maximize"},
        "parameters": {"i": {"values": list(range(trials))}}}, name=f"{name}.yaml")


def probes(directory: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


def assert_programs_clean(records: list[dict[str, Any]], secret: str) -> None:
    """No program saw the secret or a way to it; nor did the worker that ran it."""
    assert records, "no trial program ran"
    for record in records:
        leaked = [k for k, v in record["environ"].items() if secret in v or k in SERVER_VARS]
        assert not leaked, f"the program's environment holds {leaked}"
        assert secret not in json.dumps(record["argv"])
        assert secret not in record["worker_environ"], "the worker's environment holds it"
        assert secret not in record["worker_cmdline"], record["worker_cmdline"]
        assert "HQ_SWEEP_REDIS_URL=" not in record["worker_environ"]


def marked_processes(marker: str) -> dict[int, tuple[str, str]]:
    """Every process whose environment holds `marker` (it travels to each child): pid ->
    (environ, cmdline)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().decode(errors="replace")
            cmdline = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:  # gone meanwhile
            continue
        if marker in environ:
            found[int(entry.name)] = (environ, cmdline.replace("\0", " "))
    return found


def assert_processes_clean(processes: dict[int, tuple[str, str]], secret: str,
                           allowed: set[int]) -> None:
    """None of `processes` but `allowed` (those the test itself gave the URL, as a user
    exporting it would) holds the secret in its environment or command line."""
    for pid, (environ, cmdline) in processes.items():
        if pid in allowed:
            continue
        assert secret not in environ, f"pid {pid} ({cmdline[:200]}) has it in its environment"
        assert secret not in cmdline, f"pid {pid} has it in its command line"


def assert_ps_clean(secret: str) -> None:
    """`ps -eo args`: what anyone on the machine sees."""
    shown = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, timeout=20,
                           check=True).stdout
    assert secret not in shown


def assert_files_clean(root: Path, secret: str) -> None:
    """No log or output file under `root` holds the secret."""
    for path in root.rglob("*"):
        if path.is_file():
            assert secret not in path.read_text(errors="replace"), f"{path} holds it"
