"""The CLI as a user meets it: validate, command mode, exports, errors without tracebacks."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hq_sweep.queue.client import connect
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
    assert result.returncode == 3  # the user's code cannot start (README: exit codes)
    assert "workers cannot start" in result.stderr and "not_a_real_module_xyz" in result.stderr
    assert "Traceback" not in result.stderr


STORED_RECORDS = {  # as the scripts leave them (2 has no record at all)
    0: {"state": "complete", "attempt": "1", "params": '{"x":0.5,"n":2}', "queued_at": "10.25",
        "worker": "w0", "started_at": "11.5", "ended_at": "12.625", "duration": "0.125",
        "values": "[1.5]", "metrics": '{"acc":0.75}'},
    1: {"state": "pruned", "attempt": "2", "params": '{"x":0.25,"n":1}', "worker": "w1",
        "started_at": "13.0", "ended_at": "14.5", "values": "[7]", "reason": "pruned at step 3"},
    3: {"state": "failed", "attempt": "1", "params": '{"x":1,"n":3}', "started_at": "20.0",
        "ended_at": "21.0", "duration": "0.000000", "reason": "ValueError: bad\\nline"},
    4: {"state": "cancelled", "attempt": "0", "params": '{"x":0.125,"n":1}', "queued_at": "9.5"},
    5: {"state": "running", "attempt": "1", "params": '{"x":0.75,"n":2}', "worker": "",
        "started_at": "30.0", "lease": "31000"},
}
EXPORTED_CSV = (  # what exports print for these records, byte for byte
    "number,state,value,attempt,worker,started_at,ended_at,duration,reason,metrics,"
    "intermediate_values,node,gpu,gpus,gpu_hours,rss_peak_mb,gpu_mem_peak_mb,params.n,params.x\r\n"
    "0,complete,1.5,1,w0,1970-01-01T00:00:12.500000+00:00,1970-01-01T00:00:12.625000+00:00,"
    '0.125,,"{""acc"":0.75}","{""0"":0.5,""1"":0.25}",,,,,,,2,0.5\r\n'
    "1,pruned,7,2,w1,1970-01-01T00:00:13.000000+00:00,1970-01-01T00:00:14.500000+00:00,1.5,"
    "pruned at step 3,{},{},,,,,,,1,0.25\r\n"
    "2,,,0,,,,,,{},{},,,,,,,,\r\n"
    "3,failed,,1,,1970-01-01T00:00:21.000000+00:00,1970-01-01T00:00:21.000000+00:00,0.0,"
    "ValueError: bad\\nline,{},{},,,,,,,3,1\r\n"
    "4,cancelled,,0,,,,,,{},{},,,,,,,1,0.125\r\n"
    "5,running,,1,,1970-01-01T00:00:30.000000+00:00,,,,{},{},,,,,,,2,0.75\r\n")


def _t(seconds: float) -> str:
    """An epoch time of the records as exports show it: ISO-8601, UTC."""
    return f"1970-01-01T00:00:{seconds:09.6f}+00:00"


def _row(number: int, state: str | None, **fields: object) -> dict[str, object]:
    return {"number": number, "state": state, "values": None, "params": {}, "metrics": {},
            "intermediate_values": {}, "attempt": 0, "worker": None, "started_at": None,
            "ended_at": None, "duration": None, "reason": None, "node": None, "gpu": None,
            "gpus": None, "gpu_hours": None, "rss_peak_mb": None, "gpu_mem_peak_mb": None,
            **fields}


EXPORTED_ROWS = [
    _row(0, "complete", values=[1.5], params={"x": 0.5, "n": 2}, metrics={"acc": 0.75},
         intermediate_values={0: 0.5, 1: 0.25}, attempt=1, worker="w0", started_at=_t(12.5),
         ended_at=_t(12.625), duration=0.125),
    _row(1, "pruned", values=[7], params={"x": 0.25, "n": 1}, attempt=2, worker="w1",
         started_at=_t(13.0), ended_at=_t(14.5), duration=1.5, reason="pruned at step 3"),
    _row(2, None),
    _row(3, "failed", params={"x": 1, "n": 3}, attempt=1, started_at=_t(21.0),
         ended_at=_t(21.0), duration=0.0, reason="ValueError: bad\\nline"),
    _row(4, "cancelled", params={"x": 0.125, "n": 1}),
    _row(5, "running", params={"x": 0.75, "n": 2}, attempt=1, started_at=_t(30.0)),
]


def test_export_prints_stored_records_exactly(
    redis_url: str, tmp_path: Path
) -> None:
    connection = connect(redis_url)
    for number, stored in STORED_RECORDS.items():
        connection.hset(f"hqs:s:e:t:{number}", mapping=stored)  # type: ignore[arg-type]
    connection.hset("hqs:s:e", mapping={"next": 6, "state": "finished"})
    connection.hset("hqs:s:e:iv:0", mapping={"0": "0.5", "1": "0.25"})
    env = cli_env(redis_url, tmp_path)

    def export(fmt: str) -> bytes:  # bytes: no newline translation between us and the CLI
        return subprocess.run([sys.executable, "-m", "hq_sweep", "export", "--sweep", "e",
                               "--format", fmt], env=env, capture_output=True, check=True,
                              timeout=60).stdout
    assert export("csv") == EXPORTED_CSV.encode()
    assert export("json") == (json.dumps(EXPORTED_ROWS, indent=1) + "\n").encode()
    # A record that does not read costs its row nothing but what did not read, and says so:
    connection.hset("hqs:s:e:t:1", mapping={"values": "[oops", "metrics": "{}"})
    [row] = [r for r in finished_rows(redis_url, "e") if r["number"] == 1]
    assert row == {**EXPORTED_ROWS[1], "values": None, "reason": "pruned at step 3"}
    connection.hdel("hqs:s:e:t:1", "reason")
    [row] = [r for r in finished_rows(redis_url, "e") if r["number"] == 1]
    assert row["reason"] == "unreadable record: values '[oops' does not read"


@pytest.mark.timeout(60)
def test_export_parquet_holds_the_csv_table_with_types(redis_url: str, tmp_path: Path) -> None:
    pq = pytest.importorskip("pyarrow.parquet")
    connection = connect(redis_url)
    for number, stored in STORED_RECORDS.items():
        connection.hset(f"hqs:s:pq:t:{number}", mapping=stored)  # type: ignore[arg-type]
    connection.hset("hqs:s:pq", mapping={"next": 6, "state": "finished"})
    connection.hset("hqs:s:pq:iv:0", mapping={"0": "0.5", "1": "0.25"})
    env = cli_env(redis_url, tmp_path)
    out = tmp_path / "trials.parquet"
    done = hq(["export", "--sweep", "pq", "--format", "parquet", "-o", str(out)], env)
    assert done.returncode == 0, done.stderr
    table = pq.read_table(out)
    header = EXPORTED_CSV.splitlines()[0].split(",")
    assert table.column_names == header and table.num_rows == 6  # a missing record too
    rows = table.to_pylist()
    expected = list(csv.DictReader(io.StringIO(EXPORTED_CSV)))
    for row, text in zip(rows, expected, strict=True):  # the same cells, now typed
        for column, cell in text.items():
            value = row[column]
            if isinstance(value, float):
                assert value == float(cell), (column, row, text)
            else:
                assert ("" if value is None else str(value)) == cell, (column, row, text)
    assert isinstance(rows[0]["number"], int)
    refused = hq(["export", "--sweep", "pq", "--format", "parquet"], env)
    assert refused.returncode == 2 and "--output" in refused.stderr
