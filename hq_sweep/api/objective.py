"""Which objective `hq_sweep.optimize` runs, and where its workers find it.

Workers are processes of their own: they import the objective, so it must live in a file. It
is given as text, "path/to/obj.py:objective" or "package.module:objective", or as the function
itself when that is defined at the top of an importable .py file (inspect finds the file). A
function defined in a notebook cell or at the prompt is refused, saying what to do instead.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hq_sweep.errors import InvalidInput

ObjectiveArg = str | Callable[..., Any]


class InvalidArgument(InvalidInput, ValueError):
    """An argument of `hq_sweep.optimize` that cannot work (a ValueError, as Optuna's are)."""


@dataclass(frozen=True, slots=True)
class ObjectiveRef:
    """The objective as a sweep's `worker:` names it, and the folder workers import it from."""

    module: str  # an absolute .py path, or a dotted module name
    function: str
    base_dir: Path


def resolve_objective(objective: ObjectiveArg) -> ObjectiveRef:
    """Where workers find `objective`; InvalidArgument when they could not."""
    if isinstance(objective, str):
        return _from_text(objective)
    if callable(objective):
        return _from_function(objective)
    raise InvalidArgument("objective: expected 'path/to/obj.py:function', "
                          f"'package.module:function' or a function (got {objective!r:.80})")


def _from_text(text: str) -> ObjectiveRef:
    module, sep, function = text.strip().rpartition(":")
    if not sep or not module or not function.isidentifier():
        raise InvalidArgument("objective: expected 'path/to/obj.py:function' or "
                              f"'package.module:function' (got {text!r})")
    if not (module.endswith(".py") or "/" in module):
        return ObjectiveRef(module, function, Path.cwd())
    path = Path(module).expanduser().resolve()
    if not path.is_file():
        raise InvalidArgument(f"objective: file {module} not found (looked in {Path.cwd()})")
    return ObjectiveRef(str(path), function, path.parent)


def _from_function(func: Callable[..., Any]) -> ObjectiveRef:
    name = getattr(func, "__name__", None)
    if not isinstance(name, str) or getattr(func, "__qualname__", name) != name:
        raise InvalidArgument(
            f"objective: {func!r:.80} is not a function defined at the top of a module; "
            "workers import the objective by name: define it with `def` at the top of a .py "
            "file and pass it, or 'obj.py:function'")
    module_name = getattr(func, "__module__", None)
    module = sys.modules.get(module_name) if isinstance(module_name, str) else None
    file = _defining_file(func, module)
    if file is None or module is None or getattr(module, name, None) is not func:
        raise InvalidArgument(_not_in_a_file(name, func))
    if module_name == "__main__":
        return ObjectiveRef(str(file), name, file.parent)  # a script run as `python script.py`
    root = _import_root(str(module_name), file)
    if root is None:  # loaded from its file under a name that does not import from a folder
        return ObjectiveRef(str(file), name, file.parent)
    return ObjectiveRef(str(module_name), name, root)


def _defining_file(func: Callable[..., Any], module: Any) -> Path | None:
    """The .py file that defines `func` and is its module's own file (not a notebook cell,
    `exec`'d text or the prompt), or None."""
    try:
        source = inspect.getsourcefile(func)
    except TypeError:  # a builtin
        return None
    own = getattr(module, "__file__", None)
    if source is None or own is None or source.startswith("<"):
        return None
    path = Path(source).resolve()
    return path if path.is_file() and path == Path(own).resolve() else None


def _not_in_a_file(name: str, func: Callable[..., Any]) -> str:
    code = getattr(func, "__code__", None)
    where = f" ({code.co_filename})" if code is not None else ""
    return (f"objective: {name} is defined in a notebook, at the prompt or by exec{where}, not "
            f"in a .py file; workers run in processes of their own and import the objective "
            f"from a file: put it in one (e.g. obj.py) and pass 'obj.py:{name}', or import "
            f"it from there and pass the function")


def _import_root(module_name: str, file: Path) -> Path | None:
    """The folder from which `module_name` imports as `file` (None if none does)."""
    parts = module_name.split(".")
    levels = len(parts) if file.name == "__init__.py" else len(parts) - 1
    root = file.parent
    for _ in range(levels):
        root = root.parent
    expected = root.joinpath(*parts)
    expected = expected / "__init__.py" if file.name == "__init__.py" else \
        expected.with_name(f"{parts[-1]}.py")
    return root if expected == file else None
