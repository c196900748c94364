"""Every command fails cleanly on bad input: one clear line, a documented exit code, no
traceback unless --debug. Garbage arguments into every command in-process (typer's runner
goes through the same top-level error boundary as the console script), and the cases a new
user meets as real subprocesses against a real server."""

from __future__ import annotations

import itertools
import json
import os
import signal
import urllib.parse
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hq_sweep.cli.app import app
from hq_sweep.queue.client import connect
from hq_sweep.queue.sweep import SweepQueue
from tests.integration.helpers import (
    cli_env,
    hq,
    poll,
    start_detached_controller,
    write_sweep,
)

pytestmark = pytest.mark.integration
DOCUMENTED_EXITS = {0, 1, 2, 3, 4, 16, 17}  # README's "Exit codes"
UNREACHABLE = "redis://:secret-pw@127.0.0.1:1/0"  # nothing listens on port 1
# Commands that take a sweep file, a sweep id, or nothing; `server start` and `run` would
# start a server and `worker`/`start-workers`/`monitor` wait by design: they get flags only.
FILE_COMMANDS = ["validate", "enqueue", "sbatch", "run"]
SWEEP_OPTION_COMMANDS = ["status", "best", "export", "plot", "report"]  # --sweep ID
SWEEP_ARGUMENT_COMMANDS = ["stop", "cancel", "delete", "controller"]  # ID
SWEEP_COMMANDS = [*SWEEP_OPTION_COMMANDS, *SWEEP_ARGUMENT_COMMANDS]
REDIS_COMMANDS = [*SWEEP_OPTION_COMMANDS, "stop", "cancel", "list"]
GARBAGE_VALUES = ["", "\x7f\x01", "💥" * 50, "-" * 3, "../../etc/passwd", "a" * 5000,
                  "{{}}", "[1, 2"]


GARBAGE_FILES = {
    "binary.yaml": b"\x00\xff\xfe garbage \x00",
    "latin1.yaml": "m\xe9thode: grid".encode("latin-1"),
    "syntax.yaml": b"method: [grid\nparameters: {",
    "types.yaml": b"method: 3\nparameters: [1, 2]\nrun_cap: many\n",
    "deep.yaml": b"a: " + b"[" * 5000 + b"]" * 5000,
    "list.yaml": b"- 1\n- 2\n",
    "empty.yaml": b"",
}


def _garbage_files(tmp_path: Path) -> list[Path]:
    for name, data in GARBAGE_FILES.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "adir.yaml").mkdir()
    return [tmp_path / name for name in [*GARBAGE_FILES, "adir.yaml", "missing.yaml"]]


def _invocations(tmp_path: Path, live_url: str) -> list[list[str]]:
    """Garbage sweep ids go to a live server (so they reach the lookup, not just a refused
    connection); each command meets an unreachable one once, below."""
    calls: list[list[str]] = []
    for command, path in itertools.product(FILE_COMMANDS, _garbage_files(tmp_path)):
        calls.append([command, str(path), "--redis", UNREACHABLE] if command != "validate"
                     and command != "sbatch" else [command, str(path)])
    for command, value in itertools.product(SWEEP_COMMANDS, GARBAGE_VALUES):
        sweep = ["--sweep", value] if command in SWEEP_OPTION_COMMANDS else [value]
        calls.append([command, *sweep, "--redis", live_url])
    for command in REDIS_COMMANDS:
        calls.append([command, "--redis", "not a url"])
        calls.append([command, "--redis", "redis://:pw@[::1"])
        calls.append([command, "--redis", UNREACHABLE])
    for command in [*FILE_COMMANDS, *SWEEP_COMMANDS, "worker", "start-workers", "monitor",
                    "server", "list"]:
        calls.append([command, "--no-such-flag"])
        calls.append([command, "--workers", "-3", "--count", "x", "--timeout", "nan"])
    return calls


@pytest.mark.timeout(180)
def test_garbage_into_every_command_never_shows_a_traceback(
        redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HQ_SWEEP_DEBUG", raising=False)
    runner = CliRunner()
    bad = []
    live_password = urllib.parse.urlsplit(redis_url).password
    assert live_password
    for args in _invocations(tmp_path, redis_url):
        result = runner.invoke(app, args, catch_exceptions=True)
        output = result.output
        escaped = result.exception is not None and not isinstance(result.exception, SystemExit)
        if (escaped or "Traceback" in output or "internal error" in output
                or result.exit_code not in DOCUMENTED_EXITS or "secret-pw" in output
                or live_password in output):
            bad.append((args[:3], result.exit_code, repr(result.exception), output[-300:]))
    assert not bad, "\n".join(map(str, bad[:10]))


def test_the_first_hour_mistakes_each_get_one_line_and_their_exit_code(
        redis_url: str, tmp_path: Path) -> None:
    env = cli_env(redis_url, tmp_path)
    (tmp_path / "broken.py").write_text("def objective(trial, state):\n    return (\n")
    (tmp_path / "setup_raises.py").write_text(
        "def setup(ctx):\n    raise RuntimeError('no data here')\n\n"
        "def objective(trial, state):\n    return 1.0\n")
    controllers: list[int] = []
    cases = [
        (["status", "--sweep", "no-such-sweep"], env, 1, "no-such-sweep"),
        (["status", "--redis", UNREACHABLE], env, 1, "cannot reach"),
        (["status", "--redis", "redis://hqsweep:wrong-pw-1@" + redis_url.rsplit("@", 1)[1]],
         env, 1, "refused"),
        (["validate", str(tmp_path / "nope.yaml")], env, 2, "nope.yaml"),
    ]
    for module, code in (("broken.py", 3), ("setup_raises.py", 3)):
        spec = write_sweep(tmp_path, {"name": module[:-3], "run_cap": 2, "method": "random",
                                      "worker": str(tmp_path / module),
                                      "parameters": {"x": {"min": 0.0, "max": 1.0}}},
                           name=f"{module}.yaml")
        controllers.append(start_detached_controller(spec, module[:-3], env))
        cases.append((["worker", "--sweep", module[:-3]], env, code, module[:-3]))
    try:
        _check_cases(cases)
    finally:
        for pid in controllers:
            os.kill(pid, signal.SIGKILL)


# The user's module: (what its logged traceback shows, how the last line starts).
USER_CODE_FAILURES = {
    "broken": ('broken.py", line 2', "error: worker: importing"),
    "setup_raises": ("RuntimeError: no data here", "error: setup() failed"),
}


def _check_cases(cases: list[tuple[list[str], dict[str, str], int, str]]) -> None:
    for args, case_env, code, needle in cases:
        done = hq(args, case_env, timeout=90)
        text = done.stdout + done.stderr
        assert done.returncode == code, (args, done.returncode, text[-2000:])
        # A user's module that does not import, or whose setup() raises: its traceback is
        # logged (it is the user's code, and the place to look), then one line ends it.
        user_code = next((m for m in USER_CODE_FAILURES if m in args), None)
        if user_code is None:
            assert "Traceback" not in text, (args, text[-2000:])
        else:
            start, last_line = USER_CODE_FAILURES[user_code]
            assert "Traceback" in text and start in text, (args, text[-2000:])
            assert text.strip().splitlines()[-1].startswith(last_line), text
        assert needle in text, (args, text[-2000:])
        assert "wrong-pw-1" not in text and "secret-pw" not in text


def test_a_worker_on_a_sweep_whose_stored_spec_is_damaged_says_so(
        redis_url: str, tmp_path: Path) -> None:
    env = cli_env(redis_url, tmp_path)
    spec = write_sweep(tmp_path, {"name": "dmg", "run_cap": 3, "method": "random",
                                  "worker": {"module": "tests/workers/toy.py"},
                                  "parameters": {"x": {"min": 0.0, "max": 1.0}}})
    controller = start_detached_controller(spec, "dmg", env)
    queue = SweepQueue(connect(redis_url), "dmg")
    poll(lambda: queue.meta.read().get("spec") is not None, 30, "the stored spec")
    queue.connection.hset(queue.keys.meta, "spec", json.dumps({"method": ["not", "a", "spec"]}))
    try:
        done = hq(["worker", "--sweep", "dmg"], env, timeout=90)
    finally:
        os.kill(controller, signal.SIGKILL)
    text = done.stdout + done.stderr
    assert done.returncode == 3, text[-2000:]
    assert "Traceback" not in text and "cannot be used" in text, text[-2000:]


def test_debug_shows_the_traceback_and_keeps_the_exit_code(tmp_path: Path) -> None:
    env = cli_env(UNREACHABLE, tmp_path)
    plain = hq(["status"], env)
    debug = hq(["--debug", "status"], env)
    assert plain.returncode == debug.returncode == 1
    assert "Traceback" not in plain.stdout + plain.stderr
    assert "Traceback" in debug.stderr
    assert "secret-pw" not in debug.stdout + debug.stderr
