"""Command mode: run a sweep's `program:`/`command:` once per trial, the way W&B's agent does.

Macros follow W&B's agent (wandb/wandb_agent.py `Agent._command_run`; wandb/sdk/launch/sweeps/
utils.py `create_sweep_command`, `create_sweep_command_args`). Default command
`${env} ${interpreter} ${program} ${args}`. An item that is exactly `${name}` becomes zero or
more items (an unknown name: none, as in W&B); macros inside a longer item stay as written,
except `${envvar:NAME}` (NAME in [A-Z0-9_]*), substituted anywhere, an unset NAME giving NAME.
`${env}` /usr/bin/env · `${interpreter}` the worker's `sys.executable` (W&B writes `python`
for PATH to resolve; on cluster nodes PATH's python is often not the environment the user's
packages live in) · `${program}` · `${args}` `--k=v` · `${args_no_equals}` `--k` `v` ·
`${args_no_hyphens}` `k=v` · `${args_no_boolean_flags}` `--k` for True, nothing for False ·
`${args_json}` one item, `json.dumps(params)` · `${args_json_file}` a file holding it ·
`${args_append_hydra}` `+k=v` · `${args_override_hydra}` `++k=v` · `${args_dict}` the names
(the agent extends its argv with a dict). Values print with `str()` as W&B's f-strings do
(`0.001`, `1e-05`, `True`, `[1, 2]`, `None`); a nested group is one argument holding its dict's
repr (`--model={'depth': 3}`). Non-string command items are `str()`-ed (`True`, `42`).

Reporting protocol (program -> hq-sweep):
- stdout: a line starting with `@hq-sweep`, optional spaces/tabs, then one JSON object to the
  end of the line: `@hq-sweep {"val_acc": 0.93, "step": 3}`. Any other line (including a
  marker followed by bad JSON or a non-object) is echoed to the worker's log as `[trial N] ...`.
- or append the same objects, one per line (marker optional), to `$HQ_SWEEP_METRICS_FILE`;
  the file is read while the program runs.
- a W&B script needs neither: its `wandb.log`/`run.log` rows and `run.summary` values reach
  the file through `wandb_hook/sitecustomize.py` (W&B's own step rules; see there).
- numeric values (not booleans) are metrics. `"step"`, a non-negative integer, is the step of
  the object (`"_step"` instead when present: a W&B history row, where `step` is a metric);
  without it the step is the previous step + 1 (0 first). Each object holding the sweep's
  metric becomes `trial.report(value, step)` (single-objective sweeps only). `{"_summary":
  {...}}` sets values without a report (W&B's `run.summary`). The trial result is the last
  value of every key in arrival order (between the two sources the order is only approximate:
  log a key through one of them), as W&B's summary is the last logged value unless set.
- output must be line-buffered for live pruning: PYTHONUNBUFFERED=1 is set for the child.

The child's environment is the worker's (CUDA_VISIBLE_DEVICES passes through) without the
variables that lead to the Redis secret (`env.SERVER_VARS`: trackers such as W&B record the
environment), plus HQ_SWEEP_TRIAL_NUMBER, HQ_SWEEP_METRICS_FILE and HQ_SWEEP_PARAMS_JSON.
POSIX only: the child runs in its own session, and a prune, cancel, timeout or error kills the
whole process group.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hq_sweep.env import without_server_vars
from hq_sweep.worker.command_process import ChildProcess
from hq_sweep.worker.wandb_contract import WandbContract

MARKER = "@hq-sweep"
WANDB_STEP_KEY = "_step"  # a W&B history row, as wandb_hook/sitecustomize.py writes it
SUMMARY_KEY = "_summary"  # {"_summary": {...}}: summary values (the result), no report
KILL_DELAY_VAR = "WANDB_AGENT_KILL_DELAY"  # W&B's agent: seconds from SIGTERM to SIGKILL
DEFAULT_KILL_DELAY_S = 30.0
DEFAULT_COMMAND: tuple[str, ...] = ("${env}", "${interpreter}", "${program}", "${args}")
ENV_TRIAL_NUMBER = "HQ_SWEEP_TRIAL_NUMBER"
ENV_METRICS_FILE = "HQ_SWEEP_METRICS_FILE"
ENV_PARAMS_JSON = "HQ_SWEEP_PARAMS_JSON"
# W&B's pattern: upper-case names only; `${envvar:lower}` stays a (then unknown) macro.
_ENVVAR = re.compile(r"\$\{envvar:([A-Z0-9_]*)\}")


class CommandError(RuntimeError):
    """A command-mode trial that did not produce a result."""


class CommandFailed(CommandError):
    """The program exited non-zero (or was killed by a signal)."""

    def __init__(self, returncode: int, stderr_tail: Sequence[str]) -> None:
        self.returncode = returncode
        self.stderr_tail = list(stderr_tail)
        how = f"exit code {returncode}" if returncode >= 0 else f"signal {-returncode}"
        tail = "\n".join(self.stderr_tail) or "(no stderr)"
        super().__init__(f"command failed with {how}; last stderr lines:\n{tail}")


class CommandTimeout(CommandError, TimeoutError):
    """The program ran past the trial timeout; its process group was killed."""


class MetricNotReported(CommandError):
    """The program exited 0 but never logged the sweep's metric."""


def not_reported_message(missing: Sequence[str], logged: Mapping[str, Any]) -> str:
    names = ", ".join(repr(m) for m in missing)
    seen = ", ".join(repr(k) for k in list(logged)[:8]) + (" ..." if len(logged) > 8 else "")
    example = json.dumps({missing[0]: 0.5})
    return (f"the program exited 0 but never logged {names} "
            f"({'it logged ' + seen if logged else 'it logged no numeric value'}); "
            f"log it with wandb.log({example}), or print a line `{MARKER} {example}` to "
            f"stdout, or append that JSON to ${ENV_METRICS_FILE}")


def kill_delay(env: Mapping[str, str]) -> float:
    """W&B's agent's grace from SIGTERM to SIGKILL: $WANDB_AGENT_KILL_DELAY, else 30 s."""
    try:
        value = float(env.get(KILL_DELAY_VAR, DEFAULT_KILL_DELAY_S))
    except ValueError:
        return DEFAULT_KILL_DELAY_S
    return value if math.isfinite(value) and value >= 0 else DEFAULT_KILL_DELAY_S


class ChildMeter(Protocol):
    """What the worker's cost meter (worker.cost.CostMeter) learns of each trial's program."""

    def child_started(self, pid: int) -> None: ...

    def child_ended(self, rss_peak_kb: int | None) -> None: ...


class TrialLike(Protocol):
    """What command mode needs of the worker's trial object."""

    @property
    def number(self) -> int: ...

    @property
    def params(self) -> Mapping[str, Any]: ...

    def report(self, value: float, step: int) -> None: ...


def _plain(value: Any) -> Any:
    """Builtin types only (numpy scalars from a sampler become int/float/bool/str)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if not isinstance(value, str | int | float | bool) and hasattr(value, "item"):
        return value.item()
    return value


def args_macros(params: Mapping[str, Any]) -> dict[str, list[str]]:
    """The args-family macro expansions of W&B's `create_sweep_command_args` (a None value,
    a constant `value: null`, is passed as W&B passes it: `--k=None`, `"k": null`)."""
    plain = _plain(params)
    items = list(plain.items())
    return {
        "args": [f"--{k}={v}" for k, v in items],
        "args_no_equals": [arg for k, v in items for arg in (f"--{k}", str(v))],
        "args_no_hyphens": [f"{k}={v}" for k, v in items],
        # True -> bare flag, False -> left out (identity tests: 1 and 0 stay `--k=1`, `--k=0`)
        "args_no_boolean_flags": [
            f"--{k}" if v is True else f"--{k}={v}" for k, v in items if v is not False
        ],
        "args_json": [json.dumps(plain)],
        # Hydra's forms: + appends a config value, ++ overrides (or adds) one.
        "args_append_hydra": [f"+{k}={v}" for k, v in items],
        "args_override_hydra": [f"++{k}={v}" for k, v in items],
        # The agent extends its argv with a dict here, which gives the names alone.
        "args_dict": [k for k, _ in items],
    }


def substitute_envvars(item: str, env: Mapping[str, str]) -> str:
    return _ENVVAR.sub(lambda m: env.get(m.group(1), m.group(1)), item)


def uses_macro(command: Sequence[Any] | None, name: str) -> bool:
    return f"${{{name}}}" in [str(item) for item in (command or DEFAULT_COMMAND)]


def render_command(
    program: str | None,
    command: Sequence[Any] | None,
    params: Mapping[str, Any],
    *,
    env: Mapping[str, str],
    json_file: Path | None,
    interpreter: str | None = None,
) -> list[str]:
    """The argv W&B's agent would run for `params` (see the module docstring)."""
    macros = args_macros(params)
    macros["interpreter"] = [interpreter or sys.executable]
    if os.name != "nt":  # W&B leaves ${env} out on Windows
        macros["env"] = ["/usr/bin/env"]
    argv: list[str] = []
    for raw in command or DEFAULT_COMMAND:
        item = substitute_envvars(str(raw), env)
        if not (item.startswith("${") and item.endswith("}")):
            argv.append(item)
            continue
        name = item[2:-1]
        if name == "program":
            if not program:
                raise ValueError("command uses ${program} but the sweep has no program")
            argv.append(program)
        elif name == "args_json_file":
            if json_file is None:
                raise ValueError("command uses ${args_json_file} but no json_file was given")
            argv.append(str(json_file))
        else:
            argv += macros.get(name, [])
    return argv


def parse_metric_line(line: str) -> dict[str, Any] | None:
    """The JSON object of an `@hq-sweep {...}` line, or None for any other line."""
    if not line.startswith(MARKER):
        return None
    return parse_metric_object(line[len(MARKER) :], require_brace=True)


def parse_metric_object(text: str, *, require_brace: bool = False) -> dict[str, Any] | None:
    body = text.strip()
    if require_brace and not body.startswith("{"):
        return None  # "@hq-sweepfoo" or "@hq-sweep 3" is ordinary output
    try:
        obj = json.loads(body)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def metric_values(obj: Mapping[str, Any], step_key: str = "step") -> dict[str, float]:
    """The metrics of one logged object: numeric values except its step (booleans excluded)."""
    return {
        k: float(v)
        for k, v in obj.items()
        if k != step_key and isinstance(v, int | float) and not isinstance(v, bool)
    }


def explicit_step(obj: Mapping[str, Any], step_key: str = "step") -> int | None:
    step = obj.get(step_key)
    if isinstance(step, bool) or not isinstance(step, int | float):
        return None
    if not math.isfinite(step) or step < 0 or step != int(step):
        return None
    return int(step)


class MetricSink:
    """Collects logged objects for one trial: last values, and reports to the trial."""

    def __init__(self, trial: TrialLike, report_metric: str | None) -> None:
        self._trial = trial
        self._report_metric = report_metric
        self._last_step = -1
        self.final: dict[str, float] = {}

    def add(self, obj: Mapping[str, Any]) -> None:
        summary = obj.get(SUMMARY_KEY)
        if isinstance(summary, Mapping):  # run.summary[k] = v: the result, not a report
            self.final.update(metric_values(summary, step_key=SUMMARY_KEY))
            return
        step_key = WANDB_STEP_KEY if WANDB_STEP_KEY in obj else "step"
        values = metric_values(obj, step_key)
        self.final.update(values)
        if self._report_metric is None or self._report_metric not in values:
            return
        step = explicit_step(obj, step_key)
        step = self._last_step + 1 if step is None else step
        self._last_step = step
        value = values[self._report_metric]
        if math.isfinite(value):  # a NaN fails the trial at the end, it is not a report
            self._trial.report(value, step)  # may raise optuna.TrialPruned

    def check_cancelled(self) -> None:
        """Raises (the worker's TrialCancelled) once `hq-sweep cancel` flagged the trial, so a
        program that reports nothing is stopped too (trials without the check never raise)."""
        check = getattr(self._trial, "check_cancelled", None)
        if check is not None:
            check()


class MetricsFileTail:
    """Reads the objects appended to $HQ_SWEEP_METRICS_FILE since the last call."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._partial = b""

    def read_objects(self, *, final: bool = False) -> list[dict[str, Any]]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:  # the program may delete it; that only ends the file's data
            return []
        if size < self._offset:  # truncated by the program: start over
            self._offset, self._partial = 0, b""
        if size > self._offset:
            with self.path.open("rb") as f:
                f.seek(self._offset)
                data = f.read(size - self._offset)
            self._offset += len(data)
            self._partial += data
        *complete, self._partial = self._partial.split(b"\n")
        if final and self._partial.strip():  # a last line without its newline still counts
            complete.append(self._partial)
            self._partial = b""
        objects = []
        for raw in complete:
            text = raw.decode("utf-8", "replace").strip()
            text = text.removeprefix(MARKER)
            obj = parse_metric_object(text)
            if obj is not None:
                objects.append(obj)
        return objects


def _print_out(line: str) -> None:
    print(line, flush=True)


def _print_err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


@dataclass
class CommandObjective:
    """`objective(trial, state)` that runs the sweep's program once per trial.

    `cwd`: where the program runs (normally the sweep file's directory); `timeout`: seconds
    before the group is killed and CommandTimeout raised (None: no limit); `kill_grace`: how
    long SIGTERM is given before SIGKILL (W&B's agent: 30 s, `kill_delay()`); `echo`/
    `echo_err`: where the program's lines go.
    """

    program: str | None
    command: Sequence[Any] | None
    metric: str | Sequence[str]
    cwd: str | Path | None
    timeout: float | None
    kill_grace: float = DEFAULT_KILL_DELAY_S
    interpreter: str | None = None
    wandb: WandbContract | None = None  # what W&B's agent hands a program (None: nothing)
    meter: ChildMeter | None = None  # told the program's pid and peak RSS (the trial's cost)
    echo: Callable[[str], None] = _print_out
    echo_err: Callable[[str], None] = _print_err

    @property
    def metrics(self) -> list[str]:
        return [self.metric] if isinstance(self.metric, str) else list(self.metric)

    def __call__(self, trial: TrialLike, state: Any = None) -> dict[str, float]:
        params = _plain(trial.params)
        params_json = json.dumps(params)
        # One scratch dir per trial, removed after it: 100k trials must not litter /tmp.
        with tempfile.TemporaryDirectory(prefix=f"hq-sweep-trial-{trial.number}-") as tmp:
            metrics_file = Path(tmp) / "metrics.jsonl"
            metrics_file.touch()
            json_file = Path(tmp) / "params.json"
            if uses_macro(self.command, "args_json_file"):
                json_file.write_text(params_json)
            env = self._child_env(trial.number, metrics_file, params_json)
            if self.wandb is not None:
                self.wandb.prepare(trial.number, params, env)
            argv = render_command(
                self.program, self.command, params,
                env=env, json_file=json_file, interpreter=self.interpreter,
            )  # fmt: skip
            # Optuna takes intermediate values only in single-objective studies.
            report = self.metrics[0] if len(self.metrics) == 1 else None
            sink = MetricSink(trial, report)
            returncode, stderr_tail = self._run(argv, env, trial.number, sink, metrics_file)
        if returncode != 0:
            raise CommandFailed(returncode, stderr_tail)
        missing = [m for m in self.metrics if m not in sink.final]
        if missing:
            raise MetricNotReported(not_reported_message(missing, sink.final))
        return sink.final

    def _child_env(self, number: int, metrics_file: Path, params_json: str) -> dict[str, str]:
        env = without_server_vars(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")  # live reports need line-by-line output
        env[ENV_TRIAL_NUMBER] = str(number)
        env[ENV_METRICS_FILE] = str(metrics_file)
        env[ENV_PARAMS_JSON] = params_json
        return env

    def _run(
        self, argv: list[str], env: dict[str, str], number: int, sink: MetricSink,
        metrics_file: Path,
    ) -> tuple[int, list[str]]:  # fmt: skip
        prefix = f"[trial {number}] "
        deadline = None if self.timeout is None else time.monotonic() + self.timeout
        tail = MetricsFileTail(metrics_file)
        child = ChildProcess(argv, self.cwd, env, on_stderr=lambda s: self.echo_err(prefix + s))
        if self.meter is not None:
            self.meter.child_started(child.proc.pid)
        try:
            for line in child.lines(deadline):
                sink.check_cancelled()  # raises, then `finally` kills, as a prune does
                obj = None if line is None else parse_metric_line(line)
                if line is not None and obj is None:
                    self.echo(prefix + line)
                # The file first: what it holds when a line arrives was mostly written earlier.
                for logged in tail.read_objects() + ([obj] if obj is not None else []):
                    sink.add(logged)  # may raise optuna.TrialPruned: `finally` kills
            for logged in tail.read_objects(final=True):
                sink.add(logged)
        except TimeoutError:
            raise CommandTimeout(
                f"trial {number}: the command ran past {self.timeout} s and was killed"
            ) from None
        finally:
            child.close(self.kill_grace)
            if self.meter is not None:
                self.meter.child_ended(child.rss_peak_kb)
        assert child.returncode is not None
        return child.returncode, child.stderr_tail()
