"""The one place that reads where a worker runs: Slurm's variables, or the local launcher's.

Inside an `srun` step Slurm sets SLURM_PROCID, SLURM_LOCALID, SLURMD_NODENAME, ... The local
launcher sets hq-sweep's own HQ_SWEEP_* variables with the same meaning, so worker code has one
path whatever started it. hq-sweep's variables win, so a launcher can override Slurm's view.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass

RANK = "HQ_SWEEP_RANK"
LOCAL_RANK = "HQ_SWEEP_LOCAL_RANK"
WORLD_SIZE = "HQ_SWEEP_WORLD_SIZE"
NODE = "HQ_SWEEP_NODE"
JOB_ID = "HQ_SWEEP_JOB_ID"


def _first(env: Mapping[str, str], *names: str) -> str | None:
    for name in names:
        value = env.get(name)
        if value:
            return value
    return None


def _int(env: Mapping[str, str], *names: str, default: int) -> int:
    value = _first(env, *names)
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


@dataclass(frozen=True, slots=True)
class JobEnvironment:
    """Where this worker process sits: rank, node, GPU, job."""

    rank: int
    local_rank: int
    world_size: int
    node: str
    gpu: str | None
    job_id: str | None
    under_slurm: bool

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> JobEnvironment:
        env = os.environ if env is None else env
        return cls(
            rank=_int(env, RANK, "SLURM_PROCID", default=0),
            local_rank=_int(env, LOCAL_RANK, "SLURM_LOCALID", default=0),
            world_size=_int(env, WORLD_SIZE, "SLURM_NTASKS", default=1),
            # Emulated Slurm nodes share one hostname: SLURMD_NODENAME tells them apart.
            node=_first(env, NODE, "SLURMD_NODENAME") or socket.gethostname(),
            gpu=_first(env, "CUDA_VISIBLE_DEVICES"),
            job_id=_first(env, JOB_ID, "SLURM_JOB_ID"),
            under_slurm="SLURM_JOB_ID" in env,
        )

    def worker_name(self, pid: int | None = None) -> str:
        """A name that says where the worker is: node, GPU (if any), rank and pid."""
        gpu = f"-gpu{self.gpu}" if self.gpu else ""
        return f"{self.node}{gpu}-r{self.rank}-{pid if pid is not None else os.getpid()}"


def local_worker_env(rank: int, world_size: int, node: str | None = None) -> dict[str, str]:
    """The variables the local launcher exports to worker `rank` of `world_size`."""
    return {
        RANK: str(rank),
        LOCAL_RANK: str(rank),
        WORLD_SIZE: str(world_size),
        NODE: node or socket.gethostname(),
    }
