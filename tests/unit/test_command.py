"""Command mode: W&B macros, the `@hq-sweep` line protocol, and real subprocess trials."""

from __future__ import annotations

import json
import math
import os
import select
import signal
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from hq_sweep.worker.command_mode import (
    CommandFailed,
    CommandObjective,
    CommandTimeout,
    MetricNotReported,
    MetricsFileTail,
    explicit_step,
    kill_delay,
    metric_values,
    parse_metric_line,
    render_command,
)

pytestmark = pytest.mark.timeout(60)

PY = "python3"  # the interpreter name used where a test renders a command without running it


class FakeTrial:
    """The slice of the worker's trial object command mode uses; prunes from `prune_at` on."""

    def __init__(self, params: dict[str, Any], number: int = 7, prune_at: int | None = None):
        self.number = number
        self.params = params
        self.prune_at = prune_at
        self.reports: list[tuple[int, float]] = []

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))
        if self.prune_at is not None and step >= self.prune_at:
            raise optuna.TrialPruned(f"pruned at step {step}")


def render(command: list[Any] | None, params: dict[str, Any], **kw: Any) -> list[str]:
    kw.setdefault("env", {})
    kw.setdefault("json_file", None)
    return render_command("train.py", command, params, interpreter=PY, **kw)


# ------------------------------------------------------------------------------------ macros


def test_default_command_is_env_interpreter_program_args() -> None:
    argv = render(None, {"lr": 0.001, "layers": 2, "opt": "adam"})
    assert argv == ["/usr/bin/env", PY, "train.py", "--lr=0.001", "--layers=2", "--opt=adam"]


def test_interpreter_defaults_to_the_workers_python() -> None:
    argv = render_command("t.py", ["${interpreter}"], {}, env={}, json_file=None)
    assert argv == [sys.executable]


def test_args_no_equals_and_no_hyphens() -> None:
    params = {"lr": 0.5, "name": "x"}
    assert render(["${args_no_equals}"], params) == ["--lr", "0.5", "--name", "x"]
    assert render(["${args_no_hyphens}"], params) == ["lr=0.5", "name=x"]


def test_booleans_in_each_args_form() -> None:
    params = {"on": True, "off": False, "n": 1, "z": 0}
    assert render(["${args}"], params) == ["--on=True", "--off=False", "--n=1", "--z=0"]
    assert render(["${args_no_boolean_flags}"], params) == ["--on", "--n=1", "--z=0"]
    assert render(["${args_no_hyphens}"], params) == ["on=True", "off=False", "n=1", "z=0"]


def test_values_are_formatted_with_str_like_wandb() -> None:
    params = {"a": 1e-05, "b": 0.1, "c": 3.0, "d": 10**20, "e": [1, 2.5, "x"], "f": 1e16}
    assert render(["${args}"], params) == [
        "--a=1e-05", "--b=0.1", "--c=3.0", "--d=100000000000000000000",
        "--e=[1, 2.5, 'x']", "--f=1e+16",
    ]  # fmt: skip


def test_nested_group_is_one_argument_holding_its_dict() -> None:
    params = {"model": {"depth": 3, "act": "relu"}, "lr": 0.01}
    assert render(["${args}"], params) == ["--model={'depth': 3, 'act': 'relu'}", "--lr=0.01"]
    [blob] = render(["${args_json}"], params)
    assert blob == '{"model": {"depth": 3, "act": "relu"}, "lr": 0.01}'
    assert json.loads(blob) == params


def test_numpy_scalars_render_as_plain_values() -> None:
    params = {"a": np.float64(0.25), "b": np.int64(4), "c": np.bool_(True)}
    assert render(["${args_no_boolean_flags}", "${args_json}"], params) == [
        "--a=0.25", "--b=4", "--c", '{"a": 0.25, "b": 4, "c": true}'
    ]  # fmt: skip


def test_args_json_file_is_the_given_path(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    assert render(["--cfg", "${args_json_file}"], {"a": 1}, json_file=path) == ["--cfg", str(path)]
    with pytest.raises(ValueError, match="json_file"):
        render(["${args_json_file}"], {"a": 1})


def test_envvar_is_substituted_anywhere_and_unset_gives_its_name() -> None:
    env = {"DATA": "/scratch/d", "N": "4"}
    command = ["${envvar:DATA}", "--data=${envvar:DATA}/x", "-j${envvar:N}", "${envvar:UNSET}"]
    assert render(command, {}, env=env) == ["/scratch/d", "--data=/scratch/d/x", "-j4", "UNSET"]


def test_literals_unknown_macros_and_embedded_macros() -> None:
    command = ["run", 3, "${nope}", "--p=${program}", "${envvar:lower}", "${program}"]
    assert render(command, {"a": 1}) == ["run", "3", "--p=${program}", "train.py"]


def test_missing_program_is_an_error_and_none_values_pass_as_wandb_passes_them() -> None:
    with pytest.raises(ValueError, match="program"):
        render_command(None, None, {}, env={}, json_file=None)
    assert render(["${args}", "${args_json}", "${args_no_boolean_flags}"], {"a": None}) == [
        "--a=None", '{"a": null}', "--a=None"]


def test_hydra_forms_and_args_dict_as_wandbs_agent_expands_them() -> None:
    params = {"lr": 0.1, "opt": "adam"}
    assert render(["${args_append_hydra}"], params) == ["+lr=0.1", "+opt=adam"]
    assert render(["${args_override_hydra}"], params) == ["++lr=0.1", "++opt=adam"]
    assert render(["${args_dict}"], params) == ["lr", "opt"]


# ----------------------------------------------------------------------------- metric lines


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('@hq-sweep {"val_acc": 0.93, "step": 3}', {"val_acc": 0.93, "step": 3}),
        ('@hq-sweep {"a": 1}\n', {"a": 1}),
        ('@hq-sweep{"a": 1}', {"a": 1}),
        ('@hq-sweep \t {"a": {"nested": [1]}}  \r', {"a": {"nested": [1]}}),
        ("@hq-sweep {}", {}),
    ],
)
def test_metric_lines_are_parsed(line: str, expected: dict[str, Any]) -> None:
    assert parse_metric_line(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        "epoch 3 val_acc 0.93",
        "",
        "@hq-sweep",
        "@hq-sweep not json",
        '@hq-sweep {"a": 1',
        '@hq-sweep {"a": 1} trailing',
        "@hq-sweep [1, 2]",
        "@hq-sweep 3",
        '@hq-sweep "text"',
        '@hq-sweepx {"a": 1}',
        ' @hq-sweep {"a": 1}',
        'log: @hq-sweep {"a": 1}',
    ],
)
def test_other_lines_are_not_metric_lines(line: str) -> None:
    assert parse_metric_line(line) is None


def test_metric_values_and_steps() -> None:
    obj = {"acc": 0.5, "n": 3, "ok": True, "tag": "x", "step": 2, "lst": [1]}
    assert metric_values(obj) == {"acc": 0.5, "n": 3.0}
    assert [explicit_step({"step": s}) for s in (4, 4.0, -1, 1.5, True, "3", None)] == [
        4, 4, None, None, None, None, None
    ]  # fmt: skip


def test_metrics_file_tail_reads_complete_lines_then_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"a": 1}\n@hq-sweep {"b": 2}\ngarbage\n{"c": ')
    tail = MetricsFileTail(path)
    assert tail.read_objects() == [{"a": 1}, {"b": 2}]
    with path.open("a") as f:
        f.write('3}\n{"d": 4}')
    assert tail.read_objects() == [{"c": 3}]
    assert tail.read_objects(final=True) == [{"d": 4}]
    path.unlink()
    assert tail.read_objects(final=True) == []


# ------------------------------------------------------------------------ real subprocesses


class Lines:
    def __init__(self) -> None:
        self.out: list[str] = []
        self.err: list[str] = []


def script(tmp_path: Path, body: str, name: str = "prog.py") -> str:
    path = tmp_path / name
    header = "import json, os, subprocess, sys, time\n"
    path.write_text(header + textwrap.dedent(body))
    return str(path)


def objective(program: str, lines: Lines, **kw: Any) -> CommandObjective:
    kw.setdefault("metric", "val_acc")
    kw.setdefault("timeout", 30.0)
    return CommandObjective(
        program, kw.pop("command", None), kw.pop("metric"), kw.pop("cwd", None),
        kw.pop("timeout"), echo=lines.out.append, echo_err=lines.err.append, **kw,
    )  # fmt: skip


def wait_gone(pid: int, timeout: float) -> bool:
    """True once `pid` has exited (a pidfd becomes readable then: an event, not a sleep)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        readable, _, _ = select.select([fd], [], [], timeout)
        return bool(readable)
    finally:
        os.close(fd)


def test_reports_and_final_metrics_from_stdout(tmp_path: Path) -> None:
    prog = script(tmp_path, """
        print("starting", sys.argv[1:])
        for step, acc in enumerate([0.5, 0.7, 0.6]):
            print("@hq-sweep " + json.dumps({"val_acc": acc, "loss": 1 - acc, "step": step}))
        print("@hq-sweep not json")
        print('@hq-sweep {"extra": 5, "note": "text"}')
    """)  # fmt: skip
    lines = Lines()
    trial = FakeTrial({"lr": 0.1, "deep": True})
    result = objective(prog, lines)(trial, None)
    assert trial.reports == [(0, 0.5), (1, 0.7), (2, 0.6)]
    assert result == {"val_acc": 0.6, "loss": pytest.approx(0.4), "extra": 5.0}
    assert lines.out == [
        "[trial 7] starting ['--lr=0.1', '--deep=True']", "[trial 7] @hq-sweep not json"
    ]  # fmt: skip


def test_steps_count_up_without_an_explicit_step(tmp_path: Path) -> None:
    prog = script(tmp_path, """
        for value in (1, 2):
            print("@hq-sweep " + json.dumps({"val_acc": value}))
        print('@hq-sweep {"val_acc": 3, "step": 10}')
        print('@hq-sweep {"val_acc": 4}')
        print('@hq-sweep {"other": 4}')
    """)  # fmt: skip
    trial = FakeTrial({})
    objective(prog, Lines())(trial)
    assert trial.reports == [(0, 1.0), (1, 2.0), (10, 3.0), (11, 4.0)]


def test_metrics_file_merges_with_stdout(tmp_path: Path) -> None:
    prog = script(tmp_path, """
        with open(os.environ["HQ_SWEEP_METRICS_FILE"], "a") as f:
            f.write(json.dumps({"val_acc": 0.8, "step": 0}) + "\\n")
            f.flush()
            print('@hq-sweep {"loss": 0.5, "from_stdout": 1}', flush=True)
            f.write('@hq-sweep {"val_acc": 0.9, "from_file": 2}\\nnot json\\n{"last": 3}')
        print('@hq-sweep {"loss": 0.25}')
    """)  # fmt: skip
    trial = FakeTrial({})
    result = objective(prog, Lines())(trial)
    assert result == {"val_acc": 0.9, "loss": 0.25, "from_stdout": 1, "from_file": 2, "last": 3}
    assert trial.reports == [(0, 0.8), (1, 0.9)]


def test_child_environment_args_and_cwd(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")
    prog = script(tmp_path, """
        keys = ["HQ_SWEEP_TRIAL_NUMBER", "HQ_SWEEP_PARAMS_JSON", "CUDA_VISIBLE_DEVICES",
                "PYTHONUNBUFFERED"]
        print(json.dumps({k: os.environ[k] for k in keys}))
        print(json.dumps([os.getcwd(), sys.argv[1:]]))
        with open(sys.argv[-1]) as f:
            print("@hq-sweep " + json.dumps({"val_acc": json.load(f)["m"]["w"]}))
    """)  # fmt: skip
    lines = Lines()
    command = ["${env}", "${interpreter}", "${program}", "${args_no_hyphens}", "${args_json_file}"]
    work = tmp_path / "work"
    work.mkdir()
    trial = FakeTrial({"m": {"w": 0.25}}, number=12)
    result = objective(prog, lines, command=command, cwd=work)(trial)
    assert result == {"val_acc": 0.25}
    env = json.loads(lines.out[0].removeprefix("[trial 12] "))
    assert env == {
        "HQ_SWEEP_TRIAL_NUMBER": "12", "HQ_SWEEP_PARAMS_JSON": '{"m": {"w": 0.25}}',
        "CUDA_VISIBLE_DEVICES": "3", "PYTHONUNBUFFERED": "1",
    }  # fmt: skip
    cwd, args = json.loads(lines.out[1].removeprefix("[trial 12] "))
    assert cwd == str(work)
    assert args[0] == "m={'w': 0.25}" and args[1].endswith("params.json")


def test_nonzero_exit_raises_with_the_stderr_tail(tmp_path: Path) -> None:
    prog = script(tmp_path, """
        print('@hq-sweep {"val_acc": 0.5}')
        for i in range(30):
            print(f"err {i}", file=sys.stderr)
        sys.exit(3)
    """)  # fmt: skip
    lines = Lines()
    with pytest.raises(CommandFailed, match="exit code 3") as info:
        objective(prog, lines)(FakeTrial({}))
    assert info.value.returncode == 3
    assert info.value.stderr_tail == [f"err {i}" for i in range(10, 30)]
    assert "err 29" in str(info.value) and "err 9\n" not in str(info.value)
    assert lines.err[0] == "[trial 7] err 0" and len(lines.err) == 30


def test_death_by_signal_is_a_failure(tmp_path: Path) -> None:
    prog = script(tmp_path, "os.kill(os.getpid(), 9)\n")
    with pytest.raises(CommandFailed, match="signal 9") as info:
        objective(prog, Lines())(FakeTrial({}))
    assert info.value.returncode == -signal.SIGKILL


def test_prune_kills_the_process_group_promptly(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    prog = script(tmp_path, f"""
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        with open({str(pid_file)!r}, "w") as f:
            f.write(str(child.pid))
        for step in range(3):
            print("@hq-sweep " + json.dumps({{"val_acc": step / 10}}))
        time.sleep(120)  # the program would go on for minutes
    """)  # fmt: skip
    trial = FakeTrial({}, prune_at=1)
    started = time.monotonic()
    with pytest.raises(optuna.TrialPruned):
        objective(prog, Lines(), kill_grace=10.0)(trial)
    assert time.monotonic() - started < 5.0  # SIGTERM worked; the 10 s SIGKILL grace unused
    assert trial.reports == [(0, 0.0), (1, 0.1)]
    assert wait_gone(int(pid_file.read_text()), timeout=5.0)


def test_a_program_ignoring_sigterm_gets_sigkill_after_the_grace(tmp_path: Path) -> None:
    term_file = tmp_path / "got-sigterm"
    prog = script(tmp_path, f"""
        import signal
        signal.signal(signal.SIGTERM, lambda *_: open({str(term_file)!r}, "w").close())
        print('@hq-sweep {{"val_acc": 0.5}}')
        print('@hq-sweep {{"val_acc": 0.6}}')
        while True:
            time.sleep(0.05)
    """)  # fmt: skip
    started = time.monotonic()
    with pytest.raises(optuna.TrialPruned):
        objective(prog, Lines(), kill_grace=1.0)(FakeTrial({}, prune_at=1))
    assert 1.0 <= time.monotonic() - started < 5.0  # the whole grace, then SIGKILL
    assert term_file.exists()  # it was asked first


def test_kill_delay_is_wandb_agents() -> None:
    assert kill_delay({}) == 30.0  # W&B's agent default
    assert kill_delay({"WANDB_AGENT_KILL_DELAY": "2.5"}) == 2.5
    assert kill_delay({"WANDB_AGENT_KILL_DELAY": "soon"}) == 30.0
    assert kill_delay({"WANDB_AGENT_KILL_DELAY": "-1"}) == 30.0


def test_timeout_kills_and_raises(tmp_path: Path) -> None:
    prog = script(tmp_path, """
        print('@hq-sweep {"val_acc": 0.5}')
        time.sleep(120)
    """)  # fmt: skip
    trial = FakeTrial({})
    started = time.monotonic()
    with pytest.raises(CommandTimeout, match=r"past 0\.5 s"):
        objective(prog, Lines(), timeout=0.5)(trial)
    assert 0.5 <= time.monotonic() - started < 5.0
    assert trial.reports == [(0, 0.5)]


def test_sigterm_ignored_gets_sigkill_after_grace(tmp_path: Path) -> None:
    prog = script(tmp_path, """
        import signal
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print('@hq-sweep {"val_acc": 0.5}')
        time.sleep(120)
    """)  # fmt: skip
    started = time.monotonic()
    with pytest.raises(optuna.TrialPruned):
        objective(prog, Lines(), kill_grace=0.3)(FakeTrial({}, prune_at=0))
    assert time.monotonic() - started < 5.0


def test_leftover_child_holding_stdout_does_not_hang_the_trial(tmp_path: Path) -> None:
    pid_file = tmp_path / "leftover.pid"
    prog = script(tmp_path, f"""
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        with open({str(pid_file)!r}, "w") as f:
            f.write(str(child.pid))
        print('@hq-sweep {{"val_acc": 0.75}}')
    """)  # fmt: skip
    started = time.monotonic()
    assert objective(prog, Lines())(FakeTrial({})) == {"val_acc": 0.75}
    assert time.monotonic() - started < 5.0
    assert wait_gone(int(pid_file.read_text()), timeout=5.0)


def test_exit_zero_without_the_metric_is_an_error(tmp_path: Path) -> None:
    prog = script(tmp_path, "print('@hq-sweep {\"loss\": 1.0}')\n")
    with pytest.raises(MetricNotReported, match="never logged 'val_acc'") as info:
        objective(prog, Lines())(FakeTrial({}))
    message = str(info.value)
    assert "it logged 'loss'" in message  # what it did log: often a misspelt name
    assert 'wandb.log({"val_acc": 0.5})' in message and "@hq-sweep" in message  # how to


def test_nan_is_returned_but_not_reported(tmp_path: Path) -> None:
    prog = script(tmp_path, "print('@hq-sweep {\"val_acc\": NaN}')\n")
    trial = FakeTrial({})
    result = objective(prog, Lines())(trial)
    assert math.isnan(result["val_acc"]) and trial.reports == []


def test_multi_objective_reports_nothing_and_returns_every_metric(tmp_path: Path) -> None:
    prog = script(tmp_path, 'print(\'@hq-sweep {"acc": 0.9, "latency": 2.5, "step": 0}\')\n')
    trial = FakeTrial({})
    result = objective(prog, Lines(), metric=["acc", "latency"])(trial)
    assert result == {"acc": 0.9, "latency": 2.5} and trial.reports == []
