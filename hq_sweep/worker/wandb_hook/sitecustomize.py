"""hq-sweep's bridge from an unchanged W&B script to its trial: every `run.log` reaches the sweep.

Why here: a command-mode trial is the user's own program, and wandb writes nothing a reader
could follow live offline (the `.wandb` file is buffered; no history or summary JSON). The
worker puts this folder first on PYTHONPATH, so Python imports this file at start-up in the
trial's program and in anything it starts (DDP ranks included).

What it does, and only while $HQ_SWEEP_METRICS_FILE is set (otherwise nothing but loading any
sitecustomize it shadows):
- when `wandb.sdk.wandb_run` is imported (never before: importing wandb costs a second), wraps
  `Run.log`, `Run.finish` and the summary's `update` (which `summary[k] = v` and
  `summary.k = v` go through);
- replays W&B's history rules (wandb-core `handlePartialHistorySync`): an explicit `step` below
  the current one drops the call, above it completes the pending row first; `commit` defaults
  to True without `step`, to False with it; a completed row takes the current step, which then
  advances. Each completed row is appended to the metrics file as `{"_step": N, key: number}`
  (nested dicts flattened with "."; ints, floats and 0-d numpy/torch/jax values, not booleans).
  A summary update is appended as `{"_summary": {key: number}}`. The pending row is completed
  at `finish()` and at exit, as wandb does.
- counts only rank 0 of a distributed job (W&B's convention): `RANK`, when set, and
  torch.distributed's rank once it is initialised.

It runs inside the user's interpreter, which may be another Python than hq-sweep's: it imports
nothing of hq-sweep's and never lets its own failure reach the user's program.
"""

from __future__ import annotations  # annotations stay text: older interpreters run this too

import atexit
import functools
import importlib.machinery
import importlib.util
import json
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from importlib.abc import Loader
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any

_METRICS_FILE_VAR = "HQ_SWEEP_METRICS_FILE"
_TARGET = "wandb.sdk.wandb_run"
_HERE = os.path.dirname(os.path.abspath(__file__))


def _load_shadowed_sitecustomize() -> None:
    """Run the sitecustomize this file hides (a site's or an environment's), as site.py would."""
    path = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # site.py's own behaviour: report and go on
        sys.stderr.write("Error in sitecustomize; set PYTHONVERBOSE for traceback:\n"
                         f"{type(exc).__name__}: {exc}\n")


def _number(value: object) -> int | float | None:
    """A loggable scalar as int/float, else None (booleans, media, arrays are not metrics)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):  # numpy, torch, jax
        try:
            item = value.item()
        except Exception:
            return None
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            return item
    return None


def _flatten(data: Mapping[Any, Any], prefix: str = "") -> dict[str, int | float | None]:
    """W&B shows nested dicts as dotted keys; a non-number leaves its key out (and removes an
    earlier number under it: the row no longer holds one)."""
    out = {}
    for key, value in data.items():
        name = prefix + str(key)
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = _number(value)
    return out


def _is_rank_zero() -> bool:
    rank = os.environ.get("RANK")
    if rank not in (None, "", "0"):
        return False
    dist = sys.modules.get("torch.distributed")
    try:
        if dist is not None and dist.is_available() and dist.is_initialized():
            return dist.get_rank() == 0
    except Exception:
        pass
    return True


class _MetricsFile:
    """Appends one JSON object per line; one write per line, so ranks never interleave."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._lock = threading.Lock()

    def write(self, obj: dict[str, Any]) -> None:
        line = (json.dumps(obj) + "\n").encode("utf-8")
        with self._lock:
            fd = os.open(self._path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)


class _History:
    """One run's history as wandb-core builds it: the pending row and the current step."""

    def __init__(self, sink: _MetricsFile, starting_step: int) -> None:
        self._sink = sink
        self.step = starting_step
        self._row: dict[str, int | float] = {}

    def log(self, data: Mapping[str, Any], step: int | None, commit: bool | None) -> None:
        if step is not None:
            if step < self.step:
                return  # W&B: "Steps must be monotonically increasing": the call is dropped
            if step > self.step:
                self.complete(step)
        for key, value in _flatten(data).items():
            if value is None:
                self._row.pop(key, None)
            else:
                self._row[key] = value
        if commit if commit is not None else step is None:
            self.complete(self.step + 1)

    def complete(self, next_step: int | None = None) -> None:
        if self._row:
            row: dict[str, int | float] = {"_step": self.step}
            row.update(self._row)
            self._sink.write(row)
            self._row = {}
        self.step = self.step + 1 if next_step is None else next_step


class _Bridge:
    """The state of this process: one history per run, all written to the trial's file."""

    def __init__(self, path: str) -> None:
        self._sink = _MetricsFile(path)
        self._lock = threading.Lock()
        # by id(run): a run object lives until exit, so its id stays unique
        self._histories: dict[int, _History] = {}
        atexit.register(self.complete_all)

    def _history(self, run: object) -> _History:
        history = self._histories.get(id(run))
        if history is None:
            start = vars(run).get("_starting_step") or 0
            history = self._histories[id(run)] = _History(self._sink, int(start))
        return history

    def log(self, run: object, data: object, step: Any, commit: bool | None) -> None:
        if not isinstance(data, Mapping) or not _is_rank_zero():
            return
        if step is not None:
            step = int(step)
        with self._lock:
            self._history(run).log(data, step, commit)

    def finish(self, run: object) -> None:
        with self._lock:
            history = self._histories.pop(id(run), None)
            if history is not None:
                history.complete()

    def complete_all(self) -> None:
        with self._lock:
            for history in self._histories.values():
                history.complete()
            self._histories.clear()

    def summary(self, summary_dict: object, updates: Mapping[str, Any]) -> None:
        if not _is_rank_zero():
            return
        prefix = ""
        node = summary_dict
        while vars(node).get("_parent_key") is not None:  # a nested summary group
            prefix = str(vars(node)["_parent_key"]) + "." + prefix
            node = vars(node)["_parent"]
        values = {k: v for k, v in _flatten(dict(updates), prefix).items() if v is not None}
        if values:
            with self._lock:
                self._sink.write({"_summary": values})


def _args(args: Sequence[Any], kwargs: Mapping[str, Any], names: Sequence[str]) -> list[Any]:
    """Positional-or-keyword arguments by name, None where absent (wandb's defaults)."""
    return [args[i] if len(args) > i else kwargs.get(name) for i, name in enumerate(names)]


def _patch(module: ModuleType, bridge: _Bridge) -> None:
    run_class = module.Run
    original_log, original_finish = run_class.log, run_class.finish

    @functools.wraps(original_log)
    def log(self: object, *args: Any, **kwargs: Any) -> Any:
        result = original_log(self, *args, **kwargs)  # W&B's own checks first: it may raise
        try:
            data, step, commit = _args(args, kwargs, ("data", "step", "commit"))
            bridge.log(self, data, step, commit)
        except Exception as exc:
            _warn_once(f"could not pass a logged row to hq-sweep: {exc!r}")
        return result

    @functools.wraps(original_finish)
    def finish(self: object, *args: Any, **kwargs: Any) -> Any:
        try:
            bridge.finish(self)
        except Exception as exc:
            _warn_once(f"could not pass the last row to hq-sweep: {exc!r}")
        return original_finish(self, *args, **kwargs)

    for wrapper in (log, finish):  # how a test tells the bridge is in place
        wrapper.__dict__["hq_sweep_bridge"] = True
    run_class.log, run_class.finish = log, finish
    summary_module = sys.modules.get("wandb.sdk.wandb_summary")
    if summary_module is not None:
        _patch_summary(summary_module.SummaryDict, bridge)


def _patch_summary(summary_class: Any, bridge: _Bridge) -> None:
    original_update = summary_class.update

    @functools.wraps(original_update)
    def update(self: object, d: Mapping[str, Any]) -> Any:
        result = original_update(self, d)
        try:
            bridge.summary(self, d)
        except Exception as exc:
            _warn_once(f"could not pass a summary value to hq-sweep: {exc!r}")
        return result

    summary_class.update = update


_warned: list[str] = []


def _warn_once(message: str) -> None:
    if not _warned:
        _warned.append(message)
        sys.stderr.write(f"hq-sweep: {message}\n")


class _PatchAfterLoad(Loader):
    """Loader wrapper: runs the real loader, then patches the fresh module."""

    def __init__(self, loader: Loader, bridge: _Bridge) -> None:
        self._loader = loader
        self._bridge = bridge

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        try:
            _patch(module, self._bridge)
        except Exception as exc:  # an unknown wandb: the script runs, hq-sweep just cannot see
            version = getattr(sys.modules.get("wandb"), "__version__", "?")
            _warn_once(f"wandb {version} not bridged ({exc!r}); report metrics with "
                       "@hq-sweep lines")

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, ...
        return getattr(self._loader, name)


class _WandbRunFinder:
    """Meta-path finder that only answers for wandb's run module, to patch it on import."""

    def __init__(self, bridge: _Bridge) -> None:
        self._bridge = bridge

    def find_spec(self, name: str, path: Sequence[str] | None = None,
                  target: ModuleType | None = None) -> ModuleSpec | None:
        if name != _TARGET:
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = _PatchAfterLoad(spec.loader, self._bridge)
        return spec


def _install() -> None:
    # The shadowed file takes over the name `sitecustomize`: keep this module reachable.
    sys.modules["_hq_sweep_wandb_hook"] = sys.modules[__name__]
    _load_shadowed_sitecustomize()
    path = os.environ.get(_METRICS_FILE_VAR)
    if not path or _TARGET in sys.modules:
        return
    sys.meta_path.insert(0, _WandbRunFinder(_Bridge(path)))


if __name__ == "sitecustomize":  # imported by site.py at start-up (tests import it by path)
    _install()
