"""The one list of launchers: `--launcher NAME` -> a `Launcher` (see `_base.Launcher`).

Each launcher module is imported only when picked, so a missing optional dependency (the
`hyperqueue` package) fails that launcher alone, in one line, and costs the others nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from hq_sweep.env import JobEnvironment, forwarded_settings
from hq_sweep.launchers._base import Launcher, LauncherError, ServerHandoff

__all__ = ["Launcher", "LauncherError", "LauncherName", "Sizing", "launcher_kind",
           "make_launcher"]


class LauncherName(StrEnum):
    """start-workers --launcher."""

    AUTO = "auto"
    LOCAL = "local"
    SLURM = "slurm"
    HQ = "hq"


@dataclass(frozen=True, slots=True)
class Sizing:
    """How many workers and what each gets; None: the launcher's own default."""

    workers: int | None = None
    workers_per_gpu: int | None = None
    cpus_per_worker: int | None = None
    worker_args: tuple[str, ...] = ()  # added to every worker's command line


def launcher_kind(name: LauncherName | str) -> LauncherName:
    """--launcher auto: slurm inside an allocation (salloc/sbatch), else local."""
    kind = LauncherName(name)
    if kind is not LauncherName.AUTO:
        return kind
    return LauncherName.SLURM if JobEnvironment.from_env().under_slurm else LauncherName.LOCAL


def _local(server: ServerHandoff, sweep: str | None, size: Sizing) -> Launcher:
    from hq_sweep.launchers.local import LocalLauncher

    return LocalLauncher(size.workers or 2, server, sweep, extra_args=size.worker_args)


def _slurm(server: ServerHandoff, sweep: str | None, size: Sizing) -> Launcher:
    from hq_sweep.launchers.slurm import from_allocation

    # Default: one worker per GPU (or per task on CPU-only nodes) of the allocation.
    return from_allocation(server, sweep, workers=size.workers,
                           workers_per_gpu=size.workers_per_gpu or 1,
                           cpus_per_worker=size.cpus_per_worker, extra_args=size.worker_args)


def _hq(server: ServerHandoff, sweep: str | None, size: Sizing) -> Launcher:
    try:
        from hq_sweep.launchers.hyperqueue import HyperQueueLauncher
    except ImportError as exc:
        raise LauncherError(f"--launcher hq is not available in this installation ({exc})") from exc
    # HQ gives a task whole GPUs: --workers-per-gpu only says "one GPU each".
    return HyperQueueLauncher(size.workers or 2, server, sweep,
                              gpus_per_worker=1 if size.workers_per_gpu else 0,
                              cpus_per_worker=size.cpus_per_worker or 1,
                              extra_args=size.worker_args, env=forwarded_settings())


# Adding a launcher: a LauncherName member and its factory here, nothing else.
_FACTORIES: dict[LauncherName, Callable[[ServerHandoff, str | None, Sizing], Launcher]] = {
    LauncherName.LOCAL: _local,
    LauncherName.SLURM: _slurm,
    LauncherName.HQ: _hq,
}


def make_launcher(kind: LauncherName | str, server: ServerHandoff, sweep: str | None, *,
                  workers: int | None = None, workers_per_gpu: int | None = None,
                  cpus_per_worker: int | None = None,
                  worker_args: Sequence[str] = ()) -> Launcher:
    """The launcher `kind` names (auto resolved here), not started yet."""
    factory = _FACTORIES[launcher_kind(kind)]
    sizing = Sizing(workers, workers_per_gpu, cpus_per_worker, tuple(worker_args))
    return factory(server, sweep, sizing)
