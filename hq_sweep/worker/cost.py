"""What one trial cost: peak resident memory, peak GPU memory (NVML), and the worker's GPUs.

A warm worker runs trial after trial in one process, so its peak RSS must be reset per trial:
writing "5" to /proc/self/clear_refs resets the kernel's high-water mark (VmHWM, Linux >= 4.0)
to the current RSS, cheaply (no page walk). Where that is refused the peak is the process's
peak so far (getrusage), which a warm worker only ever raises: said once in the log.

Measured on a warm no-op trial: the reset ~1.6 us, getrusage ~1.4 us, VmHWM from
/proc/self/status ~9 us (pread on a kept descriptor); so trials under `EXACT_AFTER_S` take the
getrusage reading (after the reset it is the trial's peak unless a thread exited meanwhile
with a higher one: it can only over-state).
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import threading
from collections.abc import Callable
from typing import Any

from hq_sweep.env import JobEnvironment

log = logging.getLogger("hq_sweep.worker")
EXACT_AFTER_S = 0.001  # trials longer than this read VmHWM itself
GPU_SAMPLE_S = 0.5


def parse_hwm_kb(status: bytes) -> int | None:
    """VmHWM (kB) from /proc/<pid>/status text; None when absent (a kernel thread, a zombie)."""
    at = status.find(b"VmHWM:")
    if at < 0:
        return None
    end = status.find(b"kB", at)
    try:
        return int(status[at + 6 : end])
    except ValueError:
        return None


class RssPeak:
    """This process's peak resident memory over one trial (reset by `begin`)."""

    def __init__(self, proc: str = "/proc/self") -> None:
        self.clear_fd: int | None = None
        self.status_fd: int | None = None
        with contextlib.suppress(OSError):
            self.status_fd = os.open(f"{proc}/status", os.O_RDONLY)
            self.clear_fd = os.open(f"{proc}/clear_refs", os.O_WRONLY)
            os.write(self.clear_fd, b"5")
        if self.clear_fd is None:
            log.info("cannot reset the peak RSS per trial (/proc/self/clear_refs refused): "
                     "trials record the worker process's peak so far")

    @property
    def per_trial(self) -> bool:
        return self.clear_fd is not None

    def begin(self) -> None:
        if self.clear_fd is not None:
            try:
                os.write(self.clear_fd, b"5")
            except OSError:
                self.clear_fd = None

    def peak_mb(self, duration_s: float) -> float:
        kb = None
        if self.status_fd is not None and duration_s > EXACT_AFTER_S:
            with contextlib.suppress(OSError):
                kb = parse_hwm_kb(os.pread(self.status_fd, 8192, 0))
        if kb is None:  # ru_maxrss is kB on Linux
            kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return kb / 1024

    def close(self) -> None:
        for fd in (self.clear_fd, self.status_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.clear_fd = self.status_fd = None


def _gpu_handles(nvml: Any, gpu: str | None) -> list[Any]:
    """NVML handles of the worker's GPUs (CUDA_VISIBLE_DEVICES: indices or UUIDs)."""
    handles = []
    for item in (gpu or "").split(","):
        item = item.strip()
        with contextlib.suppress(Exception):  # an id NVML does not know: that GPU is skipped
            if item.isdigit():
                handles.append(nvml.nvmlDeviceGetHandleByIndex(int(item)))
            elif item:
                handles.append(nvml.nvmlDeviceGetHandleByUUID(item))
    return handles


def load_nvml() -> Any | None:
    """pynvml, initialised; None where it is not installed or finds no driver."""
    try:
        import pynvml  # type: ignore[import-not-found,unused-ignore]

        pynvml.nvmlInit()
    except Exception:  # absent, or no driver/GPU: GPU memory is simply not recorded
        return None
    return pynvml


class GpuMemoryPeak(threading.Thread):
    """Samples the GPU memory the worker's processes use on its GPUs while a trial runs, and
    keeps the peak. `pids` says which processes count (the worker, its command's child)."""

    def __init__(self, nvml: Any, handles: list[Any], pids: Callable[[], set[int]],
                 every_s: float = GPU_SAMPLE_S) -> None:
        super().__init__(name="hq-sweep-gpu-memory", daemon=True)
        self.nvml, self.handles, self.pids, self.every_s = nvml, handles, pids, every_s
        self.active = False
        self.peak_bytes = 0
        self.stopped = threading.Event()

    def sample(self) -> None:
        pids, used = self.pids(), 0
        for handle in self.handles:
            try:
                procs = self.nvml.nvmlDeviceGetComputeRunningProcesses(handle)
            except Exception:  # a driver hiccup costs one sample
                continue
            used += sum(p.usedGpuMemory or 0 for p in procs if p.pid in pids)
        self.peak_bytes = max(self.peak_bytes, used)

    def run(self) -> None:
        while not self.stopped.wait(self.every_s):
            if self.active:
                self.sample()

    def begin(self) -> None:
        self.peak_bytes, self.active = 0, True

    def end(self, duration_s: float) -> float:
        self.active = False
        if duration_s > self.every_s / 10 and self.peak_bytes == 0:
            self.sample()  # a trial between two samples still gets one reading
        return self.peak_bytes / 2**20

    def stop(self) -> None:
        self.stopped.set()


class CostMeter:
    """What each trial cost, measured by the executor around the objective (one per worker).
    Command mode tells it of the trial's child (`child_started`/`child_ended`)."""

    def __init__(self, job: JobEnvironment, nvml: Any | None = None) -> None:
        self.static: dict[str, Any] = {"node": job.node, "gpus": job.gpus}
        if job.gpu:
            self.static["gpu"] = job.gpu
        self.rss = RssPeak()
        # A tuple, replaced whole: the sampler thread reads it while the main thread adds.
        self.children: tuple[int, ...] = ()
        self.child_rss_mb: float | None = None
        handles = _gpu_handles(nvml, job.gpu) if nvml is not None else []
        self.gpu: GpuMemoryPeak | None = None
        if handles:
            self.gpu = GpuMemoryPeak(nvml, handles, lambda: {os.getpid(), *self.children})
            self.gpu.start()

    @classmethod
    def for_job(cls, job: JobEnvironment) -> CostMeter:
        return cls(job, load_nvml() if job.gpus else None)

    def begin(self) -> None:
        self.child_rss_mb = None
        self.rss.begin()
        if self.gpu is not None:
            self.gpu.begin()

    def end(self, duration_s: float) -> dict[str, Any]:
        """The trial's cost fields, as the record stores them."""
        rss = self.rss.peak_mb(duration_s)
        if self.child_rss_mb is not None:  # command mode: the program's peak is the trial's
            rss = self.child_rss_mb
        cost = {**self.static, "rss_peak_mb": round(rss, 1)}
        if self.gpu is not None:
            cost["gpu_mem_peak_mb"] = round(self.gpu.end(duration_s), 1)
        self.children = ()
        return cost

    def child_started(self, pid: int) -> None:
        self.children = (*self.children, pid)

    def child_ended(self, rss_peak_kb: int | None) -> None:
        if rss_peak_kb is not None:
            self.child_rss_mb = max(self.child_rss_mb or 0.0, rss_peak_kb / 1024)

    def close(self) -> None:
        if self.gpu is not None:
            self.gpu.stop()
        self.rss.close()
