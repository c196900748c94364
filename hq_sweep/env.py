"""The one place that reads where a worker runs: Slurm's variables, or the local launcher's.

Inside an `srun` step Slurm sets SLURM_PROCID, SLURM_LOCALID, SLURMD_NODENAME, ... The local
launcher sets hq-sweep's own HQ_SWEEP_* variables with the same meaning, so worker code has one
path whatever started it. hq-sweep's variables win, so a launcher can override Slurm's view.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from hq_sweep.errors import InvalidInput

RANK = "HQ_SWEEP_RANK"
LOCAL_RANK = "HQ_SWEEP_LOCAL_RANK"
WORLD_SIZE = "HQ_SWEEP_WORLD_SIZE"
NODE = "HQ_SWEEP_NODE"
JOB_ID = "HQ_SWEEP_JOB_ID"
# Where a process finds the Redis server (server/credentials.py). The URL holds the password,
# so hq-sweep never sets it for a child: a child gets the path of a 0600 file instead, the
# server's connection file or a credentials file written for a URL given on the command line.
REDIS_URL = "HQ_SWEEP_REDIS_URL"
REDIS_URL_FILE = "HQ_SWEEP_REDIS_URL_FILE"
CONNECTION_FILE = "HQ_SWEEP_CONNECTION_FILE"
SERVER_VARS = (REDIS_URL, REDIS_URL_FILE, CONNECTION_FILE)
# How long controllers and workers wait for a server that went away before they give up
# (a worker then exits exitcodes.LOST_SERVER): a restart or a move takes seconds to minutes.
PATIENCE = "HQ_SWEEP_PATIENCE"
DEFAULT_PATIENCE_S = 300.0


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

    @property
    def gpus(self) -> int:
        """How many GPUs this worker sees (CUDA_VISIBLE_DEVICES entries; "" or -1: none)."""
        items = [g.strip() for g in (self.gpu or "").split(",")]
        return len([g for g in items if g and not g.startswith("-") and g != "NoDevFiles"])

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


def patience_s(env: Mapping[str, str] | None = None) -> float:
    """$HQ_SWEEP_PATIENCE in seconds (DEFAULT_PATIENCE_S when unset)."""
    raw = (os.environ if env is None else env).get(PATIENCE, "").strip()
    if not raw:
        return DEFAULT_PATIENCE_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value < float("inf"):
        raise InvalidInput(f"${PATIENCE}: {raw!r} is not a positive number of seconds")
    return value


def forwarded_settings(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """hq-sweep's own settings in `env` that a worker started elsewhere (a HyperQueue task,
    which gets its HQ worker's environment rather than ours) must be given."""
    source = os.environ if env is None else env
    return {name: source[name] for name in (PATIENCE,) if source.get(name)}


def without_server_vars(env: Mapping[str, str]) -> dict[str, str]:
    """`env` without the variables that lead to the Redis secret (SERVER_VARS): the base of
    every environment hq-sweep builds for a child, which then gets back at most the one file
    it should read (a user's program: none)."""
    return {name: value for name, value in env.items() if name not in SERVER_VARS}


# --- The Slurm allocation, as seen from the salloc/sbatch shell -------------------------------
# Inside the allocation's shell (not a step) Slurm 22.05 exports node list, CPUs and tasks per
# node, but no GPU variable: GPUs per node come from `scontrol show job -d` (its per-node GRES
# lines, falling back to TresPerNode).

Run = Callable[[Sequence[str]], str]
_GPU_COUNT = re.compile(r"(?:^|[,=])gpu(?::[^:(,\s]+)?:(\d+)")


@dataclass(frozen=True, slots=True)
class NodeResources:
    """What the allocation holds on one node."""

    name: str
    cpus: int
    tasks: int
    gpus: int


@dataclass(frozen=True, slots=True)
class Allocation:
    """The Slurm job this process runs inside, node by node (in SLURM_JOB_NODELIST order)."""

    job_id: str
    nodes: tuple[NodeResources, ...]


def run_command(args: Sequence[str]) -> str:
    """Run a Slurm client command; its stdout (bounded: slurmctld may be slow, never hung)."""
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=30, check=True)
    return done.stdout


def expand_counts(value: str) -> list[int]:
    """Slurm's compressed per-node counts: "2(x3),1" -> [2, 2, 2, 1]."""
    counts: list[int] = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        match = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part)
        if match is None:
            raise ValueError(f"unrecognised Slurm count list {value!r}")
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts


def parse_hostnames(output: str) -> list[str]:
    """`scontrol show hostnames` output: one host per line."""
    return [line.strip() for line in output.splitlines() if line.strip()]


def gpu_count(gres: str) -> int:
    """GPUs in a GRES/TRES string: "gpu:2(IDX:0-1)", "gres:gpu:a100:4", "gpu:1,mps:100"."""
    return sum(int(m.group(1)) for m in _GPU_COUNT.finditer(gres.replace("gres:", "")))


def parse_node_gpus(job_text: str, expand: Callable[[str], list[str]]) -> dict[str, int]:
    """GPUs per node from `scontrol show job -d`: lines "Nodes=n[1-2] ... GRES=gpu:2(IDX:0-1)".

    Nodes not named in such lines take TresPerNode's count (jobs allocated before -d detail).
    """
    per_node: dict[str, int] = {}
    for line in job_text.splitlines():
        fields = dict(_key_values(line))
        if "Nodes" in fields and "CPU_IDs" in fields:
            for node in expand(fields["Nodes"]):
                per_node[node] = gpu_count(fields.get("GRES", ""))
    return per_node


def tres_per_node_gpus(job_text: str) -> int:
    for line in job_text.splitlines():
        fields = dict(_key_values(line))
        if "TresPerNode" in fields:
            return gpu_count(fields["TresPerNode"])
    return 0


def parse_end_time(text: str) -> datetime | None:
    """An end time as squeue %e or scontrol's EndTime= prints it (local time; None: unknown)."""
    text = text.strip()
    try:
        return datetime.fromisoformat(text)
    except ValueError:  # "Unknown", "N/A", "INVALID", "NONE": no usable end
        return None


def job_end_time(job_id: str, run: Run = run_command) -> datetime | None:
    """When the job's walltime runs out: squeue %e, else scontrol's EndTime (None: unknown)."""
    try:
        end = parse_end_time(run(["squeue", "-h", "-j", job_id, "-o", "%e"]))
        if end is None:
            fields = dict(_key_values(run(["scontrol", "show", "job", job_id])))
            end = parse_end_time(fields.get("EndTime", ""))
    except (OSError, subprocess.SubprocessError):
        return None
    return end


def read_allocation(env: Mapping[str, str] | None = None, run: Run = run_command) -> Allocation:
    """Read the allocation this shell runs in (raises if not inside one or Slurm is unusable)."""
    env = os.environ if env is None else env
    job_id = env.get("SLURM_JOB_ID")
    if not job_id:
        raise RuntimeError("not inside a Slurm allocation (SLURM_JOB_ID is not set)")
    nodes = parse_hostnames(run(["scontrol", "show", "hostnames", env["SLURM_JOB_NODELIST"]]))
    cpus = expand_counts(env.get("SLURM_JOB_CPUS_PER_NODE", "")) or [1] * len(nodes)
    tasks = expand_counts(env.get("SLURM_TASKS_PER_NODE", "")) or [1] * len(nodes)
    job_text = run(["scontrol", "show", "job", "-d", job_id])
    gpus = parse_node_gpus(job_text, lambda expr: parse_hostnames(
        run(["scontrol", "show", "hostnames", expr])))
    default_gpus = tres_per_node_gpus(job_text)
    if not len(nodes) == len(cpus) == len(tasks):
        raise RuntimeError(f"Slurm's per-node lists disagree: nodes {nodes}, cpus {cpus}, "
                           f"tasks {tasks}")
    return Allocation(job_id, tuple(
        NodeResources(node, cpu, task, gpus.get(node, default_gpus))
        for node, cpu, task in zip(nodes, cpus, tasks, strict=True)))


def _key_values(line: str) -> list[tuple[str, str]]:
    """scontrol's "Key=Value Key2=Value2" lines (values hold no spaces, except Reason=...)."""
    pairs: list[tuple[str, str]] = []
    for token in line.split():
        key, sep, value = token.partition("=")
        if sep:
            pairs.append((key, value))
    return pairs
