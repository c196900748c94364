"""Reading a Slurm allocation and planning workers on it: pure functions, recorded outputs.

The outputs below were recorded from Slurm 22.05.8 (/work/shared/slurm, 2 emulated nodes with
2 fake GPUs each) inside `salloc -N2 --ntasks-per-node=2 --gres=gpu:2 -t 5`.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

import pytest

from hq_sweep.env import (
    Allocation,
    NodeResources,
    expand_counts,
    gpu_count,
    job_end_time,
    parse_end_time,
    parse_hostnames,
    parse_node_gpus,
    read_allocation,
    tres_per_node_gpus,
)
from hq_sweep.errors import HqSweepError
from hq_sweep.launchers.hyperqueue import HyperQueueLauncher
from hq_sweep.launchers.local import LocalLauncher
from hq_sweep.launchers.registry import (
    Launcher,
    LauncherError,
    LauncherName,
    launcher_kind,
    make_launcher,
)
from hq_sweep.launchers.slurm import (
    Placement,
    SlurmLauncher,
    from_allocation,
    parse_steps,
    plan_workers,
    srun_command,
    step_env,
)
from hq_sweep.server.credentials import ServerRef
from hq_sweep.server.handoff import Handoff
from hq_sweep.worker.walltime import WalltimeGuard

SCONTROL_SHOW_JOB_D = """\
JobId=3 JobName=interactive
   UserId=root(0) GroupId=root(0) MCS_label=N/A
   Priority=4294901759 Nice=0 Account=(null) QOS=(null)
   JobState=RUNNING Reason=None Dependency=(null)
   RunTime=00:00:00 TimeLimit=00:05:00 TimeMin=N/A
   SubmitTime=2026-11-28T04:36:21 EligibleTime=2026-11-28T04:36:21
   StartTime=2026-11-28T04:36:21 EndTime=2026-11-28T04:41:21 Deadline=N/A
   Partition=debug AllocNode:Sid=localhost:32314
   NodeList=n[1-2]
   BatchHost=n1
   NumNodes=2 NumCPUs=4 NumTasks=4 CPUs/Task=1 ReqB:S:C:T=0:0:*:*
   TRES=cpu=4,node=2,billing=4
   JOB_GRES=gpu:4
     Nodes=n[1-2] CPU_IDs=6-7 Mem=0 GRES=gpu:2(IDX:0-1)
   MinCPUsNode=1 MinMemoryNode=0 MinTmpDiskNode=0
   TresPerNode=gres:gpu:2
"""
# A heterogeneous job as `scontrol show job -d` prints it (GPU types, different counts).
SCONTROL_HETERO = """\
   JOB_GRES=gpu:a100:3
     Nodes=gpu01 CPU_IDs=0-7 Mem=0 GRES=gpu:a100:2(IDX:0-1)
     Nodes=gpu02 CPU_IDs=0-3 Mem=0 GRES=gpu:a100:1(IDX:3)
"""
SCONTROL_CPU_ONLY = """\
   NumNodes=2 NumCPUs=8 NumTasks=8 CPUs/Task=1 ReqB:S:C:T=0:0:*:*
     Nodes=n[1-2] CPU_IDs=0-3 Mem=0 GRES=
"""
SALLOC_ENV = {"SLURM_JOB_ID": "3", "SLURM_JOB_NODELIST": "n[1-2]",
              "SLURM_JOB_CPUS_PER_NODE": "2(x2)", "SLURM_TASKS_PER_NODE": "2(x2)"}


def fake_slurm(outputs: dict[tuple[str, ...], str]) -> Callable[[Sequence[str]], str]:
    """Slurm's client commands answering with recorded outputs (anything else: KeyError)."""

    def run(args: Sequence[str]) -> str:
        return outputs[tuple(args)]

    return run


def test_expand_counts_reads_slurms_compressed_lists() -> None:
    assert expand_counts("2(x2)") == [2, 2]
    assert expand_counts("4(x2),1") == [4, 4, 1]
    assert expand_counts("8") == [8]
    assert expand_counts("") == []
    with pytest.raises(ValueError, match="unrecognised"):
        expand_counts("2(y2)")


def test_hostnames_and_gpu_counts() -> None:
    assert parse_hostnames("n1\nn2\n") == ["n1", "n2"]
    assert gpu_count("gpu:2(IDX:0-1)") == 2
    assert gpu_count("gres:gpu:a100:4") == 4
    assert gpu_count("gpu:1,mps:100") == 1
    assert gpu_count("") == 0
    assert tres_per_node_gpus(SCONTROL_SHOW_JOB_D) == 2


def test_per_node_gres_lines_are_expanded() -> None:
    expand = {"n[1-2]": ["n1", "n2"], "gpu01": ["gpu01"], "gpu02": ["gpu02"]}.__getitem__
    assert parse_node_gpus(SCONTROL_SHOW_JOB_D, expand) == {"n1": 2, "n2": 2}
    assert parse_node_gpus(SCONTROL_HETERO, expand) == {"gpu01": 2, "gpu02": 1}
    assert parse_node_gpus(SCONTROL_CPU_ONLY, expand) == {"n1": 0, "n2": 0}


def test_read_allocation_from_the_salloc_shell() -> None:
    run = fake_slurm({
        ("scontrol", "show", "hostnames", "n[1-2]"): "n1\nn2\n",
        ("scontrol", "show", "job", "-d", "3"): SCONTROL_SHOW_JOB_D,
    })
    allocation = read_allocation(SALLOC_ENV, run)
    assert allocation == Allocation("3", (NodeResources("n1", 2, 2, 2),
                                          NodeResources("n2", 2, 2, 2)))
    with pytest.raises(RuntimeError, match="not inside a Slurm allocation"):
        read_allocation({}, run)


def test_end_time_from_squeue_then_scontrol() -> None:
    assert parse_end_time("2026-11-28T04:41:21\n") == datetime(2026, 11, 28, 4, 41, 21)
    for unknown in ("Unknown", "N/A", "INVALID", ""):
        assert parse_end_time(unknown) is None
    run = fake_slurm({("squeue", "-h", "-j", "3", "-o", "%e"): "2026-11-28T04:41:21\n"})
    assert job_end_time("3", run) == datetime(2026, 11, 28, 4, 41, 21)
    run = fake_slurm({("squeue", "-h", "-j", "3", "-o", "%e"): "Unknown\n",
                         ("scontrol", "show", "job", "3"): SCONTROL_SHOW_JOB_D})
    assert job_end_time("3", run) == datetime(2026, 11, 28, 4, 41, 21)


def gpu_nodes(cpus: int = 8) -> Allocation:
    return Allocation("3", (NodeResources("n1", cpus, 1, 2), NodeResources("n2", cpus, 1, 2)))


def test_one_worker_per_gpu_interleaved_across_nodes() -> None:
    plan = plan_workers(gpu_nodes())
    assert [(p.node, p.local_rank, p.tasks, p.gpus) for p in plan] == [
        ("n1", 0, 1, 1), ("n2", 0, 1, 1), ("n1", 1, 1, 1), ("n2", 1, 1, 1)]
    assert not any(p.overcommit for p in plan)
    assert plan_workers(gpu_nodes(), limit=3) == plan[:3]


def test_workers_per_gpu_share_one_gpu_in_one_step() -> None:
    plan = plan_workers(gpu_nodes(), workers_per_gpu=3, limit=10)
    assert [p.tasks for p in plan] == [3, 3, 3, 1]  # the limit trims the last step
    assert all(p.gpus == 1 for p in plan)
    with pytest.raises(HqSweepError, match="--ntasks-per-node=4"):
        plan_workers(gpu_nodes(cpus=1), workers_per_gpu=2)


def test_too_few_cpus_for_the_gpu_workers_overcommits_cpus_not_gpus() -> None:
    # `salloc -N2 --gres=gpu:2` holds one CPU per node: a second step would wait for it.
    plan = plan_workers(gpu_nodes(cpus=1))
    assert len(plan) == 4 and all(p.overcommit for p in plan)
    assert "--overcommit" in srun_command(plan[0])


def test_cpu_only_allocations_get_one_worker_per_task_or_per_cpus() -> None:
    cpu = Allocation("4", (NodeResources("n1", 8, 4, 0), NodeResources("n2", 6, 2, 0)))
    plan = plan_workers(cpu)
    assert sorted((p.node, p.cpus_per_task) for p in plan) == [
        ("n1", 2), ("n1", 2), ("n1", 2), ("n1", 2), ("n2", 3), ("n2", 3)]
    plan = plan_workers(cpu, cpus_per_worker=3)
    assert sorted(p.node for p in plan) == ["n1", "n1", "n2", "n2"]
    assert all(p.gpus == 0 and p.cpus_per_task == 3 for p in plan)


def test_srun_line_and_env_carry_no_secret_and_pin_the_node(tmp_path: Path) -> None:
    step = Placement("n2", 1, gpus=1)
    command = srun_command(step)
    assert command[:2] == ["srun", "-N1"] and "--exact" in command
    assert command[command.index("-w") + 1] == "n2" and "--gres=gpu:1" in command
    url = "redis://:s3cret@127.0.0.1:1/0"
    assert not any("s3cret" in arg for arg in command)
    handoff = Handoff(ServerRef(url), tmp_path)
    base = {"CUDA_VISIBLE_DEVICES": "0,1", "PATH": "/bin", "HQ_SWEEP_REDIS_URL": url}
    env = step_env(base, step, 3, 4, handoff)
    assert not any("s3cret" in value for value in env.values())  # a URL the user exported too
    assert json.loads(Path(env["HQ_SWEEP_REDIS_URL_FILE"]).read_text()) == {"url": url}
    assert env["HQ_SWEEP_RANK"] == "3"
    assert env["HQ_SWEEP_NODE"] == "n2" and "CUDA_VISIBLE_DEVICES" not in env
    shared = step_env({}, Placement("n1", 0, tasks=2, gpus=1), 0, 4, handoff)
    assert "HQ_SWEEP_RANK" not in shared  # SLURM_PROCID tells a step's tasks apart


def test_auto_launcher_is_slurm_only_inside_an_allocation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    assert launcher_kind(LauncherName.AUTO) == "local"
    assert launcher_kind("hq") == "hq"
    monkeypatch.setenv("SLURM_JOB_ID", "7")
    assert launcher_kind(LauncherName.AUTO) == "slurm"


def test_every_launcher_name_makes_a_launcher_and_auto_resolves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    url = Handoff(ServerRef("redis://:x@127.0.0.1:1/0"))  # writes nothing until a start
    local = make_launcher("auto", url, "s", workers=3)
    assert isinstance(local, Launcher)
    assert type(local) is LocalLauncher and local.count == 3
    default = make_launcher(LauncherName.LOCAL, url, None)
    assert isinstance(default, LocalLauncher) and default.count == 2
    with pytest.raises(LauncherError, match="not inside a Slurm allocation"):
        make_launcher("slurm", url, "s")  # outside salloc: one clear line
    hq = make_launcher("hq", url, "s", workers_per_gpu=2, cpus_per_worker=3)
    assert isinstance(hq, Launcher) and isinstance(hq, HyperQueueLauncher)
    assert (hq.count, hq.gpus_per_worker, hq.cpus_per_worker) == (2, 1, 3)
    with pytest.raises(ValueError):
        make_launcher("nope", url, "s")


def test_slurm_launcher_from_a_recorded_allocation_is_a_launcher() -> None:
    launcher = from_allocation(Handoff(ServerRef("redis://:x@127.0.0.1:1/0")), "s", workers=3,
                               allocation=gpu_nodes())
    assert isinstance(launcher, Launcher)
    assert launcher.count == 3 and launcher.job_id == "3"
    assert launcher.describe().startswith("3 workers as Slurm steps: n1:gpu0, n2:gpu0, n1:gpu1; ")
    assert "worker output" in launcher.describe()  # where it goes: said, here no log dir
    empty = Allocation("9", ())
    with pytest.raises(LauncherError, match="no room for a worker"):
        from_allocation(Handoff(ServerRef("redis://:x@127.0.0.1:1/0")), "s", allocation=empty)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_walltime_guard_uses_the_observed_mean_and_a_margin() -> None:
    clock, reads = Clock(), []

    def read_end(job: str) -> float | None:
        reads.append(job)
        return 1200.0

    guard = WalltimeGuard("3", margin_s=30, refresh_s=300, read_end=read_end, clock=clock)
    assert guard.allows(0)  # no trial seen yet: only the margin counts
    clock.now += 40  # two trials in 40 s
    assert guard.allows(2) and guard.mean_trial_s() == 20
    clock.now += 500  # idle, no trial ran: not counted
    assert guard.mean_trial_s() == 20
    clock.now = 1140  # 1200 - 30 - 1140 = 30 s left: one 20 s trial fits, two do not
    assert guard.allows(2, batch=1)
    assert not guard.allows(2, batch=2)
    assert reads == ["3"]  # cached: the end is re-read only every refresh_s
    clock.now = 1200 - 29
    assert not guard.allows(2)


def test_walltime_guard_is_off_outside_slurm_and_keeps_the_last_known_end() -> None:
    assert WalltimeGuard(None, read_end=lambda job: 0.0).allows(0, 256)
    ends = iter([2000.0, None])
    clock = Clock()
    guard = WalltimeGuard("3", refresh_s=10, read_end=lambda job: next(ends), clock=clock)
    assert guard.end() == 2000.0
    clock.now += 11
    assert guard.end() == 2000.0  # squeue failed this time: keep the last good answer


def test_sigterm_goes_to_the_steps_through_scancel_not_to_srun() -> None:
    calls: list[tuple[str, ...]] = []

    def run(args: Sequence[str]) -> str:
        calls.append(tuple(args))
        return "26.0 mine\n26.1 other\n26.2 mine\n" if args[0] == "squeue" else ""

    server = Handoff(ServerRef("redis://:x@127.0.0.1:1/0"))
    launcher = SlurmLauncher(0, server, None, job_id="26", run=run, step_name="mine")
    launcher.signal_all(signal.SIGTERM)
    assert calls == [("squeue", "-h", "-s", "-j", "26", "-o", "%i %j"),
                     ("scancel", f"--signal={int(signal.SIGTERM)}", "26.0", "26.2")]
    assert parse_steps("", "mine") == []
