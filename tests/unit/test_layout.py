"""The layout's rules, read from the code's imports: who may import whom, no circles, and only
the transport (hq_sweep/queue/) talks to Redis."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "hq_sweep"
pytestmark = pytest.mark.timeout(30)

# Folder -> the hq_sweep folders and top-level modules it may import (besides itself).
SHARED = {"messages", "errors", "env", "exitcodes", "limits", "queue"}
ALLOWED = {
    "spec": {"errors"},
    "queue": {"messages", "errors", "limits"},
    "controller": SHARED | {"spec"},
    "worker": SHARED | {"spec"},
    "server": {"errors", "env", "queue"},
    "launchers": {"errors", "env", "exitcodes"},
    "results": SHARED | {"spec"},
    "cli": None,  # the top: it may import every folder
    # The Python API (`hq_sweep.optimize`) runs what `hq-sweep run` runs, so it may import what
    # the CLI does, and `cli.local_run` itself (rather than a copy of it).
    "api": SHARED | {"spec", "controller", "server", "launchers", "results", "cli"},
    "": {"api"},  # hq_sweep/__init__.py: `hq_sweep.optimize`, imported on first use
    "__main__": {"cli"},
    # The shared modules at the top import nothing of hq_sweep's but each other's basics.
    "messages": {"limits"},
    "limits": set(),
    "errors": set(),
    "env": {"errors"},  # a setting it reads that is wrong is the user's bad input
    "exitcodes": set(),
}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(path: Path) -> Iterator[str]:
    """Absolute module names imported anywhere in `path` (TYPE_CHECKING blocks included)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def _graph() -> dict[str, set[str]]:
    """Who imports whom. `from hq_sweep import exitcodes` counts as importing the submodule
    alone: the top package itself holds only its version and a lazy `optimize`."""
    modules = _modules()
    return {name: {m for m in _imports(path) if m in modules and m not in (name, "hq_sweep")}
            for name, path in modules.items()}


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_each_folder_imports_only_what_its_docstring_allows() -> None:
    wrong = []
    for module, targets in _graph().items():
        allowed = ALLOWED.get(_room(module), set())
        if allowed is None:
            continue
        for target in targets:
            room = _room(target)
            if room and room != _room(module) and room not in allowed:
                wrong.append(f"{module} imports {target}")
    assert not wrong, "\n".join(sorted(wrong))


def test_there_are_no_import_circles() -> None:
    graph = _graph()
    for package in [m for m in graph if _modules()[m].name == "__init__.py"]:
        for target in graph[package]:  # a package re-exporting its own modules is no circle
            graph.get(target, set()).discard(package)
    done: set[str] = set()

    def visit(module: str, trail: list[str]) -> None:
        if module in trail:
            raise AssertionError("import circle: " + " -> ".join([*trail, module]))
        if module in done:
            return
        for target in sorted(graph[module]):
            visit(target, [*trail, module])
        done.add(module)

    for module in sorted(graph):
        visit(module, [])


def test_only_the_transport_imports_redis() -> None:
    talkers = sorted(
        name for name, path in _modules().items()
        if _room(name) != "queue" and any(m == "redis" or m.startswith("redis.")
                                          for m in _imports(path)))
    assert talkers == []


def test_the_worker_needs_optuna_only_for_trial_pruned_and_define_by_run() -> None:
    """`TrialPruned`; and Optuna's distributions in the one module that builds them for
    define-by-run `suggest_*` (worker/suggest.py)."""
    uses = {}
    for name, path in _modules().items():
        if _room(name) == "worker":
            names = {m for m in _imports(path) if m.split(".")[0] == "optuna"}
            if names:
                uses[name] = names
    by_run = uses.pop("hq_sweep.worker.suggest", set())
    assert all(n.startswith("optuna.distributions") for n in by_run), by_run
    assert all(names == {"optuna", "optuna.TrialPruned"} for names in uses.values()), uses
