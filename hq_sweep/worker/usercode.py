"""Loading the user's code (`setup`/`objective`) and turning what it returns into values."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import math
import sys
import sysconfig
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hq_sweep.errors import HqSweepError

Objective = Callable[[Any, Any], Any]
Setup = Callable[[Any], Any]


class UserCodeError(HqSweepError):
    """The user's module cannot be loaded or lacks what the sweep file names."""


# Frames under these are not the user's: the line a failure names is the user's own.
_NOT_USER = tuple(
    {str(Path(p).resolve()) for p in (sysconfig.get_paths()["stdlib"],
                                      sysconfig.get_paths()["purelib"],
                                      sysconfig.get_paths()["platlib"])}
    | {str(Path(__file__).resolve().parents[1])}
)
_LINE_LIMIT = 200


def describe_exception(exc: BaseException) -> str:
    """`Type: message (file.py:LINE)` on one line, naming the user's frame nearest the raise
    (not hq-sweep's, the standard library's or an installed package's): what a summary of
    failures shows, where a traceback would not be read."""
    lines = str(exc).strip().splitlines()
    text = type(exc).__name__ + (f": {lines[0]}" if lines else "")
    if len(text) > _LINE_LIMIT:
        text = text[: _LINE_LIMIT - 1] + "…"
    where = _user_frame(exc)
    return f"{text} ({where})" if where else text


def _user_frame(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if frame.filename.startswith("<"):
            continue  # <frozen importlib._bootstrap>, <string>
        path = str(Path(frame.filename).resolve())
        if not path.startswith(_NOT_USER):
            return f"{Path(frame.filename).name}:{frame.lineno}"
    return ""


class InvalidResult(ValueError):
    """The objective returned something that is not a finite value for every objective."""


@dataclass(frozen=True, slots=True)
class UserCode:
    setup: Setup | None
    objective: Objective
    optuna_style: bool = False  # `objective(trial)`: called without a state, params flat


def takes_one_argument(func: Callable[..., Any]) -> bool:
    """True for an Optuna-style `objective(trial)`: exactly one positional parameter
    without a default, and no room for a second (`*args`)."""
    try:
        parameters = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):  # a builtin or C callable without a signature
        return False
    positional = [p for p in parameters
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if any(p.kind is p.VAR_POSITIONAL for p in parameters) or len(positional) != 1:
        return False
    return positional[0].default is inspect.Parameter.empty


def _without_state(objective: Callable[[Any], Any]) -> Objective:
    def call(trial: Any, state: Any) -> Any:
        return objective(trial)

    return call


def _import_path(path: Path) -> Any:
    name = f"hq_sweep_user_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UserCodeError(f"worker: cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    # Its own folder first, so the user's sibling modules import as they would from a script.
    sys.path.insert(0, str(path.parent))
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def import_module(module: str, base_dirs: Sequence[Path]) -> Any:
    """Import `module`: a .py path (relative to each of `base_dirs` in turn) or a dotted name."""
    try:
        if module.endswith(".py") or "/" in module:
            for base in base_dirs:
                candidate = (base / module).resolve()
                if candidate.is_file():
                    return _import_path(candidate)
            tried = ", ".join(dict.fromkeys(str((base / module).resolve()) for base in base_dirs))
            raise UserCodeError(f"worker: file {module!r} not found (tried {tried})")
        for base in base_dirs:
            if str(base) not in sys.path:
                sys.path.append(str(base))
        return importlib.import_module(module)
    except UserCodeError:
        raise
    except Exception as exc:  # the user's import-time code may raise anything
        raise UserCodeError(
            f"worker: importing {module!r} failed: {describe_exception(exc)}") from exc


def load_user_code(module: str, setup: str, objective: str, base_dirs: Sequence[Path]) -> UserCode:
    loaded = import_module(module, base_dirs)
    found = getattr(loaded, objective, None)
    if not callable(found):
        raise UserCodeError(f"worker: {module!r} has no callable {objective!r}")
    setup_fn = getattr(loaded, setup, None)
    if setup_fn is not None and not callable(setup_fn):
        raise UserCodeError(f"worker: {module}.{setup} is not callable")
    if takes_one_argument(found):  # Optuna's `objective(trial)`: module state is its state
        return UserCode(setup=setup_fn, objective=_without_state(found), optuna_style=True)
    return UserCode(setup=setup_fn, objective=found)


def _finite(value: Any, what: str) -> float:
    if isinstance(value, bool):
        raise InvalidResult(f"{what} is a bool, not a number")
    if not isinstance(value, int | float):
        # numpy scalars and 0-d tensors convert through float()
        try:
            value = float(value)
        except (TypeError, ValueError) as exc:
            raise InvalidResult(f"{what} is {type(value).__name__}, not a number") from exc
    number = float(value)
    if not math.isfinite(number):
        raise InvalidResult(f"{what} is {number}")
    return number


def normalize_result(
    result: Any, metric_names: Sequence[str]
) -> tuple[list[float], dict[str, Any]]:
    """(values, metrics) from a float, a dict of metrics, or a sequence (multi-objective)."""
    expected = max(1, len(metric_names))
    if isinstance(result, Mapping):
        if not metric_names:
            raise InvalidResult("objective returned a dict but the sweep names no metric")
        missing = [name for name in metric_names if name not in result]
        if missing:
            raise InvalidResult(f"objective's dict lacks the sweep metric {missing[0]!r}")
        values = [_finite(result[name], f"metric {name!r}") for name in metric_names]
        metrics = {k: v for k, v in result.items() if isinstance(v, int | float | str | bool)}
        return values, metrics
    if isinstance(result, Sequence) and not isinstance(result, str):
        values = [_finite(v, f"value {i}") for i, v in enumerate(result)]
    else:
        values = [_finite(result, "objective's return value")]
    if len(values) != expected:
        raise InvalidResult(f"objective returned {len(values)} values, the sweep has {expected}")
    return values, {}
