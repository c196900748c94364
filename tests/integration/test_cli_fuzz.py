"""Generated garbage into every CLI command: argv built by hypothesis from the command tree
itself (each command's real options and arguments, in any number and order, with values
from garbage text, hostile numbers, bad URLs and garbage files), run in-process through the
app's one error boundary. No traceback, no internal error, only documented exit codes, and
no password in any output. A new command or option is fuzzed without a change here."""

from __future__ import annotations

import enum
import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from hq_sweep.cli.app import app
from tests.integration.test_cli_errors import DOCUMENTED_EXITS
from tests.integration.test_cli_errors import GARBAGE_FILES as SWEEP_FILE_GARBAGE

pytestmark = pytest.mark.integration
SECRET = "fuzz-secret-pw"
UNREACHABLE = f"redis://:{SECRET}@127.0.0.1:1/0"  # nothing listens on port 1
# Blocks by design until stopped: not something garbage input can reach otherwise.
NEVER_GENERATED = {("server", "start"): {"--foreground"}}
GARBAGE_FILES = {**SWEEP_FILE_GARBAGE, "template.sh": b"#!/bin/bash\n{{ nope }} {% for %}\n"}


def _commands() -> list[tuple[tuple[str, ...], Any]]:
    """Every leaf command with its path (`server start` is ("server", "start"))."""
    found: list[tuple[tuple[str, ...], Any]] = []

    def walk(command: Any, path: tuple[str, ...]) -> None:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                walk(sub, (*path, name))
        else:
            found.append((path, command))

    walk(typer.main.get_command(app), ())
    return found


COMMANDS = _commands()


def _values(files: list[str]) -> st.SearchStrategy[str]:
    hostile = ["", "-1", "0", "1e309", "nan", "-inf", "99999999999999999999", "0x10", "--",
               "-", "*", "::*", "💥", "a" * 3000, "../../../../etc/passwd", "/dev/null", "/",
               UNREACHABLE, "redis://:pw@[::1", "unix:///nope.sock", "rediss://h:0/x",
               "not a url", "{{ x }}", "%s%n", "local", "slurm", "hq", "csv", "parquet",
               "optuna", "sqlite:///" + "x" * 10, "2:00:00", "1-00:00", "SIGUSR1@90"]
    text = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
                   max_size=40)
    return st.sampled_from(hostile + files) | text | st.integers().map(str)


def _typed(param: Any, files: list[str]) -> st.SearchStrategy[str]:
    """Values of the option's own type (past the parser, into the command), at its bounds
    and beyond them."""
    kind = param.type_descriptor.annotation
    low = param.min if getattr(param, "min", None) is not None else 0
    if kind is int:
        edges = st.sampled_from([low, low - 1, low + 1, 2**31, 2**63])
        return (edges | st.integers(low - 2, low + 10**6)).map(str)
    if kind is float:
        return (st.sampled_from([low, low - 1e-9, 1e308]) | st.floats(allow_nan=True)).map(str)
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return st.sampled_from([member.value for member in kind])
    if kind is Path:
        return st.sampled_from([*files, ".", "state", "new/dir/file.csv", "/proc/1/x"])
    return _values(files)


@st.composite
def invocations(draw: st.DrawFn, files: list[str]) -> tuple[tuple[str, ...], list[str]]:
    """(the command's path, an argv for it)."""
    path, command = draw(st.sampled_from(COMMANDS))
    values = _values(files)
    skipped = NEVER_GENERATED.get(path, set())
    argv = list(path)
    params = [p for p in command.params if not set(p.opts) & skipped]
    required = [p for p in params if p.required and draw(st.integers(0, 9))]  # mostly given
    chosen = draw(st.lists(st.sampled_from(params), max_size=6)) if params else []
    for param in required + chosen:
        if param.param_type_name == "argument":
            argv.append(draw(values | _typed(param, files)))
        elif getattr(param, "is_flag", False):
            argv.append(draw(st.sampled_from(param.opts)))
        else:
            value = draw(values | _typed(param, files) | _typed(param, files))
            argv += [draw(st.sampled_from(param.opts)), value]
    if draw(st.booleans()):  # a stray word or flag
        argv.insert(draw(st.integers(0, len(argv))), draw(values | st.just("--no-such")))
    return path, argv


def _stop_servers_under(root: Path) -> None:
    """A `server start` the fuzz got right started a real server: stop it."""
    for record in root.rglob("connection.json"):
        try:
            os.kill(int(json.loads(record.read_text())["pid"]), signal.SIGKILL)
        except (OSError, ValueError, KeyError, TypeError):
            continue
        record.unlink()


@pytest.fixture
def sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """An empty state dir, no server, a short patience, relative paths inside tmp_path."""
    for name, data in GARBAGE_FILES.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "adir.yaml").mkdir()
    monkeypatch.chdir(tmp_path)
    for var in ("HQ_SWEEP_REDIS_URL", "HQ_SWEEP_REDIS_URL_FILE", "HQ_SWEEP_CONNECTION_FILE",
                "HQ_SWEEP_DEBUG", "SLURM_JOB_ID"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HQ_SWEEP_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("HQ_SWEEP_PATIENCE", "1")
    files = [str(tmp_path / name) for name in [*GARBAGE_FILES, "adir.yaml", "missing.yaml"]]
    try:
        yield files
    finally:
        _stop_servers_under(tmp_path)


@pytest.mark.timeout(300)
def test_generated_garbage_into_every_command_never_shows_a_traceback(
        sandbox: list[str]) -> None:
    runner = CliRunner()
    seen: set[tuple[str, ...]] = set()

    @settings(max_examples=300, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(call=invocations(sandbox))
    def no_traceback(call: tuple[tuple[str, ...], list[str]]) -> None:
        path, argv = call
        seen.add(path)
        result = runner.invoke(app, argv, catch_exceptions=True)
        if path == ("server", "start"):
            _stop_servers_under(Path.cwd())
        output = result.output
        escaped = result.exception is not None and not isinstance(result.exception, SystemExit)
        assert not escaped, (argv, repr(result.exception), output[-500:])
        assert "Traceback" not in output and "internal error" not in output, (argv, output)
        assert result.exit_code in DOCUMENTED_EXITS, (argv, result.exit_code, output[-500:])
        assert SECRET not in output, argv

    no_traceback()
    assert len(seen) == len(COMMANDS), f"not every command was fuzzed: {sorted(seen)}"
