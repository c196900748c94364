"""The CLI as a user meets it: validate, command mode, exports, errors without tracebacks."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from tests.integration.helpers import cli_env, finished_rows, hq, write_sweep

pytestmark = pytest.mark.integration
HERE = Path(__file__).parent
EXAMPLES = HERE.parent.parent / "examples"


def test_validate_accepts_examples_and_prints_grid_size(tmp_path: Path) -> None:
    result = hq(["validate", str(EXAMPLES / "argo_grid.yaml")], cli_env("", tmp_path))
    assert result.returncode == 0, result.stderr
    assert "grid: 12 combinations" in result.stdout
    for example in ("digits.yaml", "noop.yaml", "wandb_command.yaml"):
        assert hq(["validate", str(EXAMPLES / example)], cli_env("", tmp_path)).returncode == 0


def test_validate_rejects_with_one_line_per_error_and_no_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("method: bayes\nparameters:\n  lr: {min: 0.5, max: 0.1}\nrun_cap: -1\n")
    result = hq(["validate", str(bad)], cli_env("", tmp_path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert "parameters.lr.max: must be greater than min (0.5)" in lines
    assert any(line.startswith("run_cap:") for line in lines)
    assert any(line.startswith("metric:") for line in lines)
    assert "Traceback" not in result.stderr


def test_missing_server_is_a_clear_error(tmp_path: Path) -> None:
    result = hq(["status"], cli_env("", tmp_path))
    assert result.returncode == 1
    assert "hq-sweep server start" in result.stderr and "Traceback" not in result.stderr


def test_command_mode_sweep_reports_and_exports(redis_url: str, tmp_path: Path) -> None:
    spec = write_sweep(tmp_path, {
        "name": "cmd", "method": "grid", "program": str(HERE.parent / "workers" / "cmd_train.py"),
        "metric": {"name": "score", "goal": "maximize"},
        "parameters": {"x": {"values": [1.0, 2.0, 3.0]}, "steps": {"value": 3}},
    })
    env = cli_env(redis_url, tmp_path)
    result = hq(["run", str(spec), "--workers", "2", "--json"], env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["trials"]["complete"] == 3
    assert summary["best"] == {"number": 2, "value": 9.0, "params": {"x": 3.0, "steps": 3}}
    rows = finished_rows(redis_url, "cmd")
    assert rows[0]["intermediate_values"] == {0: 1.0, 1: 2.0, 2: 3.0}
    exported = hq(["export", "--sweep", "cmd", "--format", "csv"], env)
    table = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [float(r["value"]) for r in table] == [3.0, 6.0, 9.0]
    assert [float(r["params.x"]) for r in table] == [1.0, 2.0, 3.0]


def test_worker_whose_module_fails_to_import_aborts_run_clearly(
    redis_url: str, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("import not_a_real_module_xyz\n")
    spec = write_sweep(tmp_path, {
        "name": "broken", "method": "random", "run_cap": 5, "worker": str(broken),
        "parameters": {"x": {"min": 0.0, "max": 1.0}},
    })
    result = hq(["run", str(spec), "--workers", "1"], cli_env(redis_url, tmp_path), timeout=60)
    assert result.returncode == 1
    assert "workers exited" in result.stderr and "Traceback" not in result.stderr
