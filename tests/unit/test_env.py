"""JobEnvironment: one reading of Slurm's variables and the local launcher's."""

from __future__ import annotations

import pytest

from hq_sweep import env
from hq_sweep.env import JobEnvironment, local_worker_env
from hq_sweep.errors import InvalidInput


def test_reads_slurm_task_variables() -> None:
    job = JobEnvironment.from_env({
        "SLURM_JOB_ID": "42", "SLURM_PROCID": "3", "SLURM_LOCALID": "1", "SLURM_NTASKS": "4",
        "SLURMD_NODENAME": "n2", "CUDA_VISIBLE_DEVICES": "1",
    })
    assert (job.rank, job.local_rank, job.world_size, job.node, job.gpu, job.job_id) == (
        3, 1, 4, "n2", "1", "42")
    assert job.under_slurm
    assert job.worker_name(pid=7) == "n2-gpu1-r3-7"


def test_local_launcher_variables_take_the_same_path() -> None:
    job = JobEnvironment.from_env(local_worker_env(rank=1, world_size=2, node="laptop"))
    assert (job.rank, job.local_rank, job.world_size, job.node, job.gpu) == (1, 1, 2, "laptop",
                                                                            None)
    assert not job.under_slurm
    assert job.worker_name(pid=9) == "laptop-r1-9"


def test_garbage_numbers_fall_back_to_defaults() -> None:
    job = JobEnvironment.from_env({"SLURM_PROCID": "x", "SLURM_NTASKS": ""})
    assert (job.rank, job.world_size) == (0, 1)


def test_patience_defaults_to_five_minutes_and_reads_seconds() -> None:
    assert env.patience_s({}) == env.DEFAULT_PATIENCE_S == 300.0
    assert env.patience_s({env.PATIENCE: " 4.5 "}) == 4.5


@pytest.mark.parametrize("raw", ["0", "-3", "soon", "inf", "nan"])
def test_a_patience_that_is_no_positive_number_is_refused_by_name(raw: str) -> None:
    with pytest.raises(InvalidInput, match=r"\$HQ_SWEEP_PATIENCE: .* not a positive number"):
        env.patience_s({env.PATIENCE: raw})


def test_hq_tasks_are_given_the_patience_set_here() -> None:
    assert env.forwarded_settings({env.PATIENCE: "30", "HOME": "/h"}) == {env.PATIENCE: "30"}
    assert env.forwarded_settings({}) == {}
