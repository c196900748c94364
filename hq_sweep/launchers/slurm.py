"""Slurm launcher: inside an allocation, one warm worker per GPU (or CPU slot) as `srun` steps.

Each worker is its own background step, `srun -N1 -n1 --exact --gres=gpu:1 -w NODE ...`, so
Slurm binds it to one GPU (CUDA_VISIBLE_DEVICES) and a crashed worker is restarted alone.
Observed on Slurm 22.05: `--gres=gpu:2 -n2` in one step gives both tasks both GPUs, and a
step needs free CPUs on its node or it waits (`--overlap` would share the GPUs too), so when
the allocation holds fewer CPUs on a node than its GPU workers need, the steps `--overcommit`
CPUs, which leaves the GPUs exclusive. With K workers per GPU one step runs K tasks on one GPU.

Supervision (restarts with backoff, deliberate exits) is LocalLauncher's: srun exits with its
tasks' highest exit code. SIGUSR1 is forwarded through srun; SIGTERM/SIGINT through `scancel
--signal` (srun would abort the step: see SlurmLauncher). Where the Redis server is reaches
the steps in the environment, which srun propagates: the path of the 0600 file holding the URL
(a `ServerHandoff`; the file must be on a file system the nodes share, as the state dir is),
never the URL itself, nor anything on the command line.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO

from hq_sweep.env import (
    LOCAL_RANK,
    NODE,
    RANK,
    WORLD_SIZE,
    Allocation,
    Run,
    read_allocation,
    run_command,
)
from hq_sweep.errors import HqSweepError
from hq_sweep.launchers._base import LauncherError, ServerHandoff, worker_command, worker_env
from hq_sweep.launchers.local import LocalLauncher

log = logging.getLogger("hq_sweep.launcher")
# srun aborts its step on these instead of forwarding them: they go through scancel.
_VIA_SCANCEL = frozenset({signal.SIGTERM, signal.SIGINT})


@dataclass(frozen=True, slots=True)
class Placement:
    """One srun step: `tasks` workers on `node`, sharing `gpus` GPUs (0 or 1)."""

    node: str
    local_rank: int
    tasks: int = 1
    gpus: int = 0
    cpus_per_task: int = 1
    overcommit: bool = False


def plan_workers(allocation: Allocation, *, workers_per_gpu: int = 1,
                 cpus_per_worker: int | None = None, limit: int | None = None) -> list[Placement]:
    """Where the workers go: K per GPU on GPU nodes; else one per task or per C CPUs.

    Nodes are interleaved (n1 gpu0, n2 gpu0, n1 gpu1, ...) so that `limit` spreads workers.
    """
    per_node = [_plan_node(node.name, node.gpus, node.cpus, node.tasks, workers_per_gpu,
                           cpus_per_worker) for node in allocation.nodes]
    interleaved = [
        steps[i] for i in range(max(map(len, per_node), default=0))
        for steps in per_node if i < len(steps)
    ]
    if limit is None:
        return interleaved
    plan: list[Placement] = []
    for step in interleaved:  # a limit that ends inside a K-task step trims that step
        room = limit - sum(p.tasks for p in plan)
        if room <= 0:
            break
        plan.append(step if step.tasks <= room else _with_tasks(step, room))
    return plan


def _plan_node(node: str, gpus: int, cpus: int, tasks: int, workers_per_gpu: int,
               cpus_per_worker: int | None) -> list[Placement]:
    if gpus > 0:
        per_task = cpus_per_worker or 1
        overcommit = gpus * workers_per_gpu * per_task > cpus
        if overcommit and workers_per_gpu > 1:
            # 22.05 refuses a K-task step that overcommits with --exact ("More processors
            # requested than permitted"), and without --exact a step takes the whole node.
            need = gpus * workers_per_gpu * per_task
            raise HqSweepError(
                f"{workers_per_gpu} workers per GPU on {node} need {need} CPUs there; "
                f"the allocation holds {cpus}: ask salloc/sbatch for "
                f"--ntasks-per-node={gpus * workers_per_gpu} (or more --cpus-per-task)")
        return [Placement(node, i, workers_per_gpu, 1, per_task, overcommit) for i in range(gpus)]
    if cpus_per_worker is not None:
        return [Placement(node, i, 1, 0, cpus_per_worker)
                for i in range(cpus // cpus_per_worker)]
    per_task = max(1, cpus // max(1, tasks))
    return [Placement(node, i, 1, 0, per_task) for i in range(tasks)]


def _with_tasks(step: Placement, tasks: int) -> Placement:
    return Placement(step.node, step.local_rank, tasks, step.gpus, step.cpus_per_task,
                     step.overcommit)


def srun_command(step: Placement, name: str = "hq-sweep-worker") -> list[str]:
    """The srun line for one step (a background step of the allocation this runs in)."""
    command = ["srun", "-N1", f"-n{step.tasks}", f"-c{step.cpus_per_task}", "--exact",
               "-w", step.node, "--kill-on-bad-exit=0", "-J", name]
    if step.gpus:
        command.append(f"--gres=gpu:{step.gpus}")
    if step.overcommit:
        command.append("--overcommit")
    return command


def step_env(base: dict[str, str], step: Placement, rank: int, world: int,
             server: ServerHandoff) -> dict[str, str]:
    """The step's environment: ours on top of the allocation's (srun propagates all of it)."""
    kept = {k: v for k, v in base.items() if k not in (RANK, LOCAL_RANK, WORLD_SIZE, NODE)}
    # CUDA_VISIBLE_DEVICES is Slurm's to set per step; a stale one from the shell must not win.
    kept.pop("CUDA_VISIBLE_DEVICES", None)
    env = worker_env(kept, server, {WORLD_SIZE: str(world), NODE: step.node})
    if step.tasks == 1:  # a K-task step: SLURM_PROCID/SLURM_LOCALID tell its tasks apart
        env.update({RANK: str(rank), LOCAL_RANK: str(step.local_rank)})
    return env


def describe_plan(plan: Sequence[Placement]) -> str:
    return ", ".join(
        f"{p.node}:{'gpu' if p.gpus else 'cpu'}{p.local_rank}" + (f"x{p.tasks}" if p.tasks > 1
                                                                  else "")
        for p in plan)


def parse_steps(squeue_steps: str, name: str) -> list[str]:
    """Step ids named `name` in `squeue -h -s -j JOB -o "%i %j"` output ("26.0 NAME")."""
    return [parts[0] for parts in map(str.split, squeue_steps.splitlines())
            if len(parts) == 2 and parts[1] == name]


@dataclass
class SlurmLauncher(LocalLauncher):
    """LocalLauncher whose slots are srun steps placed by `plan_workers` (rank = slot).

    SIGTERM/SIGINT must not reach srun itself: srun answers them by aborting the step, which
    kills the worker mid-trial (observed: "srun: forcing job termination", exit 137). They go
    to the steps' tasks through `scancel --signal`, which only signals, so the workers drain
    and srun then exits with their code. SIGUSR1 srun forwards as it is.
    """

    placements: Sequence[Placement] = field(default_factory=tuple)
    job_id: str | None = None  # None: signals go through srun (tests without a cluster)
    run: Run = run_command
    step_name: str = field(default_factory=lambda: f"hq-sweep-worker-{os.getpid()}")

    def __post_init__(self) -> None:
        if self.count != len(self.placements):
            raise ValueError(f"{self.count} slots for {len(self.placements)} placements")

    @property
    def workers(self) -> int:
        return sum(p.tasks for p in self.placements)

    def describe(self) -> str:
        plan = describe_plan(self.placements)
        return f"{self.workers} workers as Slurm steps: {plan}; {self.output_note()}"

    def signal_all(self, sig: int) -> None:
        if self.job_id is None or sig not in _VIA_SCANCEL:
            super().signal_all(sig)
            return
        self._drain()  # LocalLauncher's bookkeeping, without signalling srun
        try:
            steps = parse_steps(self.run(["squeue", "-h", "-s", "-j", self.job_id, "-o",
                                          "%i %j"]), self.step_name)
            if steps:
                self.run(["scancel", f"--signal={int(sig)}", *steps])
        except subprocess.CalledProcessError as exc:
            # 22.05's scancel exits 225 "Invalid job id specified" after delivering a step
            # signal (observed); a step that ended meanwhile fails the same way, harmlessly.
            log.debug("scancel: %s", exc.stderr or exc)
        except (OSError, subprocess.SubprocessError) as exc:
            # Slurm unreachable: stopping the workers the hard way beats not stopping them;
            # their trials come back through the leases.
            self.on_event(f"cannot signal the steps ({exc}); signalling srun instead")
            super().signal_all(sig)

    def _popen(self, rank: int, log: IO[bytes] | None) -> subprocess.Popen[bytes]:
        step = self.placements[rank]
        env = step_env(dict(os.environ), step, rank, self.workers, self.server)
        command = self.command or worker_command(self.sweep_id, self.extra_args)
        return subprocess.Popen(
            [*srun_command(step, self.step_name), *command],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT if log is not None else None,
        )


def from_allocation(server: ServerHandoff, sweep_id: str | None, *, workers: int | None = None,
                    workers_per_gpu: int = 1, cpus_per_worker: int | None = None,
                    allocation: Allocation | None = None,
                    extra_args: Sequence[str] = ()) -> SlurmLauncher:
    """A launcher for the allocation this shell runs in (read once, in hq_sweep.env)."""
    if allocation is None:
        try:
            allocation = read_allocation()
        except RuntimeError as exc:  # e.g. --launcher slurm outside salloc: one line, no trace
            raise LauncherError(f"cannot use the Slurm launcher: {exc}") from exc
    plan = plan_workers(allocation, workers_per_gpu=workers_per_gpu,
                        cpus_per_worker=cpus_per_worker, limit=workers)
    if not plan:
        raise LauncherError(f"Slurm job {allocation.job_id} has no room for a worker "
                           f"({allocation.nodes})")
    return SlurmLauncher(len(plan), server, sweep_id, extra_args=extra_args,
                         placements=plan, job_id=allocation.job_id)
