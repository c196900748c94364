"""Output that pipes: results on stdout read back from files, one params shape, --version."""

from __future__ import annotations

import csv
import importlib.metadata
import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from hq_sweep.cli.app import app
from hq_sweep.queue.client import connect
from hq_sweep.queue.registry import SweepRegistry
from hq_sweep.spec.sweep import parse_spec
from tests.integration.helpers import cli_env, hq, write_sweep

pytestmark = pytest.mark.integration
NOTE = "a long constant " * 12  # a parameter value far wider than 80 columns

WORKER = """
def setup(ctx):
    return None


def objective(trial, state):
    value = trial.params["model"]["depth"] * 10 + trial.params["lr"]
    for step in range(2):
        trial.report(value + step, step + 1)
    return {"score": value, "extra": 1.5}
"""
NESTED_SWEEP = {
    "name": "nest", "method": "grid", "worker": "nested_worker.py",
    "metric": {"name": "score", "goal": "maximize"},
    "parameters": {"lr": {"values": [0.1, 0.2]}, "note": {"value": NOTE},
                   "model": {"parameters": {"depth": {"values": [1, 2, 3]}}}},
}


def to_file(args: list[str], env: dict[str, str], path: Path) -> tuple[str, str]:
    """Run the CLI with stdout redirected to `path`, as `hq-sweep ... > path` does:
    (the file's text, stderr)."""
    with path.open("w") as stdout:
        result = subprocess.run([sys.executable, "-m", "hq_sweep", *args], env=env, text=True,
                                stdout=stdout, stderr=subprocess.PIPE, timeout=60)
    assert result.returncode == 0, result.stderr
    return path.read_text(), result.stderr


@pytest.fixture
def nested_sweep(redis_url: str, tmp_path: Path) -> dict[str, str]:
    """A finished 6-trial grid with a nested group and a long constant; the CLI's env."""
    (tmp_path / "nested_worker.py").write_text(WORKER)
    env = cli_env(redis_url, tmp_path)
    result = hq(["run", str(write_sweep(tmp_path, NESTED_SWEEP)), "--workers", "2", "--json"],
                env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["trials"]["complete"] == 6
    return env


def nested(lr: float, depth: int) -> dict[str, Any]:
    return {"lr": lr, "model": {"depth": depth}, "note": NOTE}


def number_of(rows: list[dict[str, Any]], lr: float, depth: int) -> int:
    """The trial that ran (lr, depth): grid order is the sampler's, not the test's."""
    [number] = [r["number"] for r in rows if r["params"] == nested(lr, depth)]
    return int(number)


@pytest.mark.timeout(120)
def test_status_and_best_read_back_from_files(nested_sweep: dict[str, str],
                                              tmp_path: Path) -> None:
    env, out = nested_sweep, tmp_path / "out.txt"
    text, err = to_file(["status"], env, out)
    assert text.splitlines()[0] == "sweep nest: finished (grid exhausted)", text
    assert "complete 6" in text and "workers alive" in text and err == ""
    assert json.loads(to_file(["status", "--json"], env, out)[0])["trials"]["complete"] == 6
    rows = json.loads(to_file(["export", "--format", "json"], env, out)[0])
    best = number_of(rows, 0.2, 3)
    text, _ = to_file(["best"], env, out)
    first, params = text.split("\n", 1)
    assert first == f"trial {best}: value 30.2" and json.loads(params) == nested(0.2, 3)
    text, _ = to_file(["best", "--json"], env, out)
    assert text.count("\n") == 1  # one compact line, nothing else
    assert json.loads(text) == {"number": best, "value": 30.2, "params": nested(0.2, 3)}
    assert rows[best]["params"] == json.loads(text)["params"]  # export's shape is best's
    flat = json.loads(to_file(["best", "--json", "--flat"], env, out)[0])
    assert flat["params"] == {"lr": 0.2, "model.depth": 3, "note": NOTE}
    top = json.loads(to_file(["best", "-k", "3", "--json"], env, out)[0])
    assert [(t["number"], t["value"]) for t in top] == [
        (best, 30.2), (number_of(rows, 0.1, 3), 30.1), (number_of(rows, 0.2, 2), 20.2)]
    assert top[0] == json.loads(text)
    lines = to_file(["best", "-k", "2", "--flat"], env, out)[0].splitlines()
    assert len(lines) == 2 and lines[1].startswith(f"trial {top[1]['number']}: value 30.1  {{")
    assert json.loads(lines[1].split("  ", 1)[1]) == {"lr": 0.1, "model.depth": 3, "note": NOTE}


@pytest.mark.timeout(120)
def test_exports_nest_like_best_and_csv_carries_metrics_and_iso_times(
    nested_sweep: dict[str, str], tmp_path: Path
) -> None:
    env, out = nested_sweep, tmp_path / "out.txt"
    rows = json.loads(to_file(["export", "--format", "json"], env, out)[0])
    shapes = sorted(json.dumps(r["params"], sort_keys=True) for r in rows)
    assert shapes == sorted(json.dumps(nested(lr, d), sort_keys=True)
                            for d in (1, 2, 3) for lr in (0.1, 0.2))
    flat = json.loads(to_file(["export", "--format", "json", "--flat"], env, out)[0])
    assert {"lr", "model.depth", "note"} == set(flat[0]["params"])
    for row in rows:
        started, ended = (datetime.fromisoformat(row[k]) for k in ("started_at", "ended_at"))
        assert started.tzinfo == UTC and started <= ended
        assert isinstance(row["duration"], float)
    text, _ = to_file(["export", "--format", "csv"], env, tmp_path / "trials.csv")
    table = list(csv.DictReader(io.StringIO(text)))
    assert len(table) == 6 and "params.model" not in table[0]
    for row, exported in zip(table, rows, strict=True):
        value = float(row["value"])
        assert json.loads(row["metrics"]) == {"extra": 1.5, "score": value}
        assert json.loads(row["intermediate_values"]) == {"1": value, "2": value + 1}
        assert row["params.note"] == NOTE
        assert int(row["params.model.depth"]) == exported["params"]["model"]["depth"]
        for column in ("started_at", "ended_at"):
            assert row[column] == exported[column]
            assert datetime.fromisoformat(row[column]).tzinfo == UTC


MULTI_SPEC = {"method": "random", "parameters": {"x": {"min": 0.0, "max": 1.0}},
              "metrics": [{"name": "loss", "goal": "minimize"},
                          {"name": "acc", "goal": "maximize"}]}
MULTI_VALUES = {0: [1.0, 0.5], 1: [2.0, 0.9], 2: [1.5, 0.4], 3: [0.5, 0.2], 4: [2.0, 0.9]}


@pytest.mark.timeout(60)
def test_best_of_a_multi_objective_sweep_is_its_pareto_set(
    redis_url: str, tmp_path: Path
) -> None:
    connection = connect(redis_url)
    spec_json = json.dumps(parse_spec(MULTI_SPEC).to_json_dict())
    SweepRegistry(connection).create("mo", spec_json, "hash", str(tmp_path))
    for number, values in MULTI_VALUES.items():
        connection.hset(f"hqs:s:mo:t:{number}", mapping={  # type: ignore[arg-type]
            "state": "complete", "attempt": "1", "params": json.dumps({"x": number / 10}),
            "started_at": "1.0", "ended_at": "2.0", "values": json.dumps(values)})
    connection.hset("hqs:s:mo", mapping={"next": 5, "state": "finished"})
    env, out = cli_env(redis_url, tmp_path), tmp_path / "out.txt"
    front = json.loads(to_file(["best", "--json"], env, out)[0])
    # 2 is beaten by 0 on both; 1 and 4 tie (both kept); best loss first.
    assert [(t["number"], t["values"]) for t in front] == [
        (3, [0.5, 0.2]), (0, [1.0, 0.5]), (1, [2.0, 0.9]), (4, [2.0, 0.9])]
    assert front[0]["params"] == {"x": 0.3}
    assert len(json.loads(to_file(["best", "-k", "2", "--json"], env, out)[0])) == 2
    assert to_file(["best"], env, out)[0].splitlines()[0] == 'trial 3: values 0.5, 0.2  {"x": 0.3}'


@pytest.mark.timeout(60)
def test_version_and_plain_help(tmp_path: Path) -> None:
    env = cli_env("", tmp_path)
    result = hq(["--version"], env)  # the installed entry point, once
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"hq-sweep {importlib.metadata.version('hq-sweep')}\n"
    runner = CliRunner()  # every command's help, in this process (no start-up per command)
    names = list(getattr(typer.main.get_command(app), "commands", {}))
    assert "run" in names and "start-workers" in names
    commands = [[], *([name] for name in names), ["server", "start"], ["server", "status"]]
    for command in commands:
        shown = runner.invoke(app, [*command, "--help"], terminal_width=100)
        assert shown.exit_code == 0 and "Usage: " in shown.stdout, (command, shown.output)
        assert "<bool>" not in shown.stdout, command
    assert "--version" in runner.invoke(app, ["--help"]).stdout
    assert "--flat" in runner.invoke(app, ["best", "--help"]).stdout


@pytest.mark.timeout(60)
def test_errors_stay_on_stderr(redis_url: str, tmp_path: Path) -> None:
    env = cli_env(redis_url, tmp_path)
    result = hq(["best", "--sweep", "nope"], env)
    assert result.returncode == 1 and result.stdout == ""
    assert "no sweep 'nope'" in result.stderr
