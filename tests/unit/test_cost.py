"""Per-trial cost: the VmHWM parser, the per-trial RSS reset, the NVML sampler (a fake pynvml),
record fields and totals text."""

from __future__ import annotations

import sys
import types
from typing import Any

import pytest

from hq_sweep.env import JobEnvironment
from hq_sweep.messages import TrialOutcome, TrialRecord, TrialState
from hq_sweep.results.cost import COST_COLUMNS, cost_columns, cost_line
from hq_sweep.worker import cost
from hq_sweep.worker.cost import CostMeter, GpuMemoryPeak, RssPeak, load_nvml, parse_hwm_kb

pytestmark = pytest.mark.timeout(30)


def _job(gpu: str | None) -> JobEnvironment:
    return JobEnvironment(rank=0, local_rank=0, world_size=1, node="n1", gpu=gpu, job_id=None,
                          under_slurm=False)


def test_parse_hwm_reads_the_kb_value_and_none_without_it() -> None:
    status = b"Name:\tpython\nVmPeak:\t  9 kB\nVmHWM:\t   12345 kB\nVmRSS: 1 kB\n"
    assert parse_hwm_kb(status) == 12345
    assert parse_hwm_kb(b"Name:\tkthreadd\n") is None


def test_gpus_counts_cuda_visible_devices() -> None:
    assert _job(None).gpus == 0 and _job("").gpus == 0 and _job("-1").gpus == 0
    assert _job("0").gpus == 1 and _job("0,1").gpus == 2 and _job("GPU-ab,GPU-cd").gpus == 2


def test_rss_peak_is_reset_per_trial_and_sees_an_allocation() -> None:
    rss = RssPeak()
    try:
        rss.begin()
        block = bytearray(100 * 2**20)  # touched: bytearray zero-fills
        del block
        big = rss.peak_mb(1.0)
        rss.begin()
        small = rss.peak_mb(1.0)
    finally:
        rss.close()
    if rss.per_trial or small < big:  # where clear_refs is refused the peak never drops
        assert big - small > 80


def test_meter_without_nvml_omits_gpu_memory() -> None:
    meter = CostMeter(_job("0,1"), nvml=None)
    meter.begin()
    fields = meter.end(0.5)
    meter.close()
    assert fields["node"] == "n1" and fields["gpu"] == "0,1" and fields["gpus"] == 2
    assert fields["rss_peak_mb"] > 0 and "gpu_mem_peak_mb" not in fields


def test_load_nvml_absent_or_failing_is_none(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import raises ImportError
    assert load_nvml() is None
    broken = types.ModuleType("pynvml")

    def fail() -> None:
        raise RuntimeError("NVML Shared Library Not Found")

    broken.nvmlInit = fail  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pynvml", broken)
    assert load_nvml() is None


def _fake_nvml(used: list[int], pid: int) -> Any:
    fake = types.ModuleType("pynvml")
    proc = types.SimpleNamespace
    fake.nvmlInit = lambda: None  # type: ignore[attr-defined]
    fake.nvmlDeviceGetHandleByIndex = lambda i: f"h{i}"  # type: ignore[attr-defined]
    fake.nvmlDeviceGetHandleByUUID = lambda u: u  # type: ignore[attr-defined]
    fake.nvmlDeviceGetComputeRunningProcesses = lambda h: [  # type: ignore[attr-defined]
        proc(pid=pid, usedGpuMemory=used.pop(0) if used else 0),
        proc(pid=1, usedGpuMemory=10 * 2**30)]  # someone else's process: not counted
    return fake


def test_sampler_keeps_the_peak_of_our_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = _fake_nvml([100 * 2**20, 300 * 2**20, 200 * 2**20], pid=4242)
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert load_nvml() is fake
    sampler = GpuMemoryPeak(fake, ["h0"], lambda: {4242}, every_s=10)
    sampler.begin()
    for _ in range(3):
        sampler.sample()
    assert sampler.end(0.1) == 300.0


def test_meter_with_fake_nvml_records_gpu_memory_of_the_worker(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    fake = _fake_nvml([], pid=os.getpid())
    fake.nvmlDeviceGetComputeRunningProcesses = lambda h: [  # type: ignore[attr-defined]
        types.SimpleNamespace(pid=os.getpid(), usedGpuMemory=512 * 2**20)]
    monkeypatch.setattr(cost, "GPU_SAMPLE_S", 10.0)
    meter = CostMeter(_job("0"), nvml=fake)
    try:
        meter.begin()
        fields = meter.end(5.0)  # no sample fell inside: one is taken at the end
    finally:
        meter.close()
    assert fields["gpu_mem_peak_mb"] == 512.0


def test_command_child_peak_replaces_the_workers() -> None:
    meter = CostMeter(_job(None), nvml=None)
    meter.begin()
    meter.child_started(99)
    meter.child_ended(2048 * 1024)
    assert meter.end(1.0)["rss_peak_mb"] == 2048.0
    meter.begin()
    assert meter.child_rss_mb is None and meter.children == ()
    meter.close()


def test_record_round_trips_cost_fields_and_old_records_read() -> None:
    outcome = TrialOutcome(3, 1, TrialState.COMPLETE, [1.0], duration=7200.0, worker="w")
    cost_fields = {"node": "n1", "gpu": "0,1", "gpus": 2, "rss_peak_mb": 123.44,
                   "gpu_mem_peak_mb": 2048.0}
    stored = TrialRecord.of(outcome, 10.0, cost=cost_fields).finish_fields()
    assert stored["gpus"] == "2" and stored["rss_peak_mb"] == "123.4" and stored["gpu"] == "0,1"
    record = TrialRecord.from_hash(3, {**stored, "attempt": "1"})
    assert not record.problem and record.gpus == 2 and record.gpu_mem_peak_mb == 2048.0
    columns = cost_columns(record, record.duration)
    assert columns["gpu_hours"] == 4.0 and columns["node"] == "n1"
    old = TrialRecord.from_hash(4, {"state": "complete", "values": "[1]"})
    assert old.node == "" and old.gpus == 0 and old.rss_peak_mb is None
    assert cost_columns(old, 1.0) == dict.fromkeys(COST_COLUMNS)


def test_cost_line_says_the_totals_shortly() -> None:
    line = cost_line({"trial_hours": 3.2, "gpu_hours": 1.8, "rss_peak_mb": 2150.0})
    assert line == "cost: 1.8 GPU-h, 3.2 trial-h, peak RSS 2.1 GB"
    assert cost_line({"trial_hours": 0.0, "gpu_hours": 0.0}) == "cost: 0 trial-h"
    assert "peak GPU memory 512 MB" in cost_line({"trial_hours": 1, "gpu_mem_peak_mb": 512})
