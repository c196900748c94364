"""HyperQueue launcher: warm workers as long-running HyperQueue (HQ) tasks.

Each worker is one HQ job holding one program task, `python -m hq_sweep worker --sweep ID`, with
a resource request (`cpus`, and `gpus/nvidia` when it wants GPUs: HQ then narrows
CUDA_VISIBLE_DEVICES to the task's own GPUs). One job per worker rather than one job of N tasks
because HQ's Python API reports state per job only: this way each worker's end is seen on its
own, and a single worker can be resubmitted.

Environment: a task learns where the Redis server is from the path of the 0600 file holding
the URL (a `ServerHandoff`), never the URL itself, neither in its environment nor in argv: HQ
keeps task environments in its server's memory and journal, and `ps` shows argv. Each task
also gets HQ_SWEEP_RANK (its worker index), HQ_SWEEP_WORLD_SIZE and HQ_SWEEP_LOCAL_RANK=0; the
node is left for the worker to read where it runs (hostname or SLURMD_NODENAME), since the
submitting host is not the worker's.

Server: `server_dir`, else $HQ_SERVER_DIR, else HQ's default `~/.hq-server` (the Python client
itself ignores HQ_SERVER_DIR, unlike the `hq` CLI, so the variable is read here).

Failures: HQ reruns a task whose HQ worker is lost (allocation over, node dead) up to the task's
`crash_limit`; the trial it held comes back through its lease. A task that *exits* non-zero is
failed for good in HQ, so this launcher follows the worker's exit code with the launchers'
shared policy (`hq_sweep.launchers.slots`): deliberate exits end the slot, RECYCLE/HUNG are
resubmitted at once, other codes are crashes, resubmitted after a doubling backoff until
`max_crashes` within `crash_window_s`. HQ's error text and the log paths go to `on_event`;
`exit_codes()` gives the codes.

Stopping: HQ's Python API cannot cancel a job, so `stop()` runs `hq job cancel` when the `hq`
binary is on PATH (HQ sends the task SIGINT, which the worker treats as SIGTERM: it drains).
Without the binary it says how to cancel and stops supervising; the workers end anyway when
the sweep ends. HQ cannot pass a signal on to a task either: `signal_all()` with a stopping
signal (SIGTERM, SIGINT, SIGUSR1) cancels the jobs the same way.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hq_sweep.env import LOCAL_RANK, RANK, WORLD_SIZE
from hq_sweep.exitcodes import DELIBERATE, DRAINED, ERROR, describe
from hq_sweep.launchers._base import (
    STOPPING_SIGNALS,
    LauncherError,
    ServerHandoff,
    log_event,
    supervise,
    worker_command,
    worker_env,
)
from hq_sweep.launchers.slots import Action, CrashPolicy, Slots, exit_reason, gave_up_text

GPU_RESOURCE = "gpus/nvidia"  # the name HQ's GPU autodetection gives NVIDIA GPUs
SERVER_DIR_VAR = "HQ_SERVER_DIR"
# HQ's client answers a status query in ~1 ms; a worker's end matters within a second or so.
_POLL_S = 0.5
_EXIT_RE = re.compile(r"exit code (-?\d+)")
_SIGNAL_RE = re.compile(r"signal (\d+)")


class HyperQueueError(LauncherError, RuntimeError):
    """The HQ server cannot be reached, or the `hyperqueue` package is missing."""


class _Snapshot(Exception):
    """Raised from wait_for_jobs' progress callback, whose first call comes at once, so one
    call becomes a non-blocking status read (the API has no other way to ask)."""


def default_server_dir() -> Path | None:
    """$HQ_SERVER_DIR if set; None lets HQ use its own default (~/.hq-server)."""
    value = os.environ.get(SERVER_DIR_VAR)
    return Path(value) if value else None


def failure_code(error: str) -> int:
    """An exit code from HQ's failure text ("Program terminated with exit code 3.")."""
    if match := _EXIT_RE.search(error):
        return int(match.group(1))
    if match := _SIGNAL_RE.search(error):
        return -int(match.group(1))
    return ERROR  # e.g. the program could not be started at all


@dataclass
class HyperQueueLauncher:
    """Submits `count` workers as HQ tasks and supervises them until the sweep ends."""

    count: int
    server: ServerHandoff
    sweep_id: str | None
    gpus_per_worker: int = field(default=0, kw_only=True)
    cpus_per_worker: int = field(default=1, kw_only=True)
    server_dir: Path | None = field(default=None, kw_only=True)
    log_dir: Path | None = field(default=None, kw_only=True)  # None: ./hq-sweep-logs
    gpu_resource: str = field(default=GPU_RESOURCE, kw_only=True)
    crash_limit: int | None = field(default=None, kw_only=True)  # None: HQ's default
    extra_args: Sequence[str] = field(default=(), kw_only=True)
    # Tasks get the *HQ worker's* environment, not this process's: forward what they need here.
    env: Mapping[str, str] = field(default_factory=dict, kw_only=True)
    on_event: Callable[[str], None] = field(default=log_event, kw_only=True)
    max_crashes: int = field(default=5, kw_only=True)
    crash_window_s: float = field(default=60.0, kw_only=True)
    backoff_initial_s: float = field(default=1.0, kw_only=True)
    backoff_max_s: float = field(default=30.0, kw_only=True)
    _client: Any = field(default=None, init=False, repr=False)
    _slots: Slots = field(default_factory=Slots, init=False, repr=False)
    _jobs: list[int] = field(default_factory=list, init=False, repr=False)
    _codes: list[int | None] = field(default_factory=list, init=False, repr=False)
    # A signal seen by signal_all(), acted on by the next poll(): not inside the handler.
    _signal: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.count < 1 or self.cpus_per_worker < 1 or self.gpus_per_worker < 0:
            raise ValueError("need count >= 1, cpus_per_worker >= 1 and gpus_per_worker >= 0")

    @property
    def job_ids(self) -> list[int]:
        """The current HQ job of each slot, by rank."""
        return list(self._jobs)

    def start(self) -> None:
        if self._jobs:
            raise RuntimeError("launcher already started")
        self._client = _connect(self.server_dir or default_server_dir())
        self.log_dir = (self.log_dir or Path("hq-sweep-logs")).resolve()
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._slots = Slots(CrashPolicy(self.max_crashes, self.crash_window_s,
                                        self.backoff_initial_s, self.backoff_max_s))
        try:
            for rank in range(self.count):
                self._jobs.append(self._submit(rank))
                self._codes.append(None)
                self._slots.add(time.monotonic())  # queued counts as started: HQ runs it
        except BaseException:
            self.stop(grace_s=0.0)  # don't leave the jobs submitted before the failure
            raise

    def describe(self) -> str:
        jobs = ", ".join(map(str, self._jobs))
        return f"{self.count} workers as HyperQueue jobs {jobs} (logs in {self.log_dir})"

    def poll(self) -> None:
        """One supervision pass: read job states, decide on ended ones, resubmit due slots."""
        self._take_signal()
        live = self._slots.running()
        if live:
            states = self._job_states([self._jobs[s.rank] for s in live])
            for slot in live:
                status = states.get(self._jobs[slot.rank], {})
                if status.get("completed"):
                    self._ended(slot.rank, self._exit_code(slot.rank, status))
        for slot in self._slots.due(time.monotonic()):
            self._resubmit(slot.rank)

    def active(self) -> bool:
        """Some slot has a job queued or running, or one due after a backoff."""
        return self._slots.open()

    def wait(self, timeout_s: float | None) -> bool:
        """Supervise until no slot is active (None: however long); True if that happened."""
        # HQ offers no blocking wait with a timeout: plain sleeps between passes.
        if supervise(self.poll, self.active, time.sleep, _POLL_S, timeout_s):
            self.server.close()  # only now: a queued task still has to read its file
            return True
        return False

    def signal_all(self, sig: int) -> None:
        """HQ cannot signal a task: a stopping signal (SIGTERM, SIGINT, SIGUSR1) becomes a
        cancel of every job (HQ sends the tasks SIGINT: the workers drain), done by the next
        poll() since this runs in a signal handler; any other signal is reported, not sent."""
        self._signal = sig

    def stop(self, grace_s: float = 10.0) -> None:
        """Cancel every live job (HQ sends SIGINT: the workers drain); no more resubmits."""
        self._signal = None
        self._cancel()
        self.wait(grace_s)

    def exit_codes(self) -> list[int | None]:
        """Each slot's latest exit code as of the last poll (None: its job is not over)."""
        return list(self._codes)

    def gave_up(self) -> list[int]:
        """Ranks of the slots abandoned as crash-looping."""
        return self._slots.gave_up()

    def _take_signal(self) -> None:
        sig, self._signal = self._signal, None
        if sig is None:
            return
        if sig in STOPPING_SIGNALS:
            self._cancel()
        else:
            self.on_event(f"signal {sig} cannot be passed on to HyperQueue tasks; ignored")

    def _cancel(self) -> None:
        """Drain, and ask HQ to cancel the live jobs; if it cannot, stop supervising them."""
        self._slots.drain()
        live = [str(self._jobs[slot.rank]) for slot in self._slots.running()]
        if not live:
            return
        hq = shutil.which("hq")
        if hq is None:
            self.on_event(
                "HyperQueue's Python API cannot cancel jobs and no `hq` binary is on PATH: "
                f"run `hq job cancel {','.join(live)}` (the workers also end with the sweep)"
            )
        elif (failed := _hq_cancel(hq, self.server_dir or default_server_dir(), live)):
            self.on_event(f"`hq job cancel` failed: {failed}")
        else:
            return
        # The jobs go on without us: waiting for them would keep wait() from ever returning.
        self._slots.finish_all()

    def _task_env(self, rank: int) -> dict[str, str]:
        # LOCAL_RANK 0: HQ gives each task its own CUDA_VISIBLE_DEVICES, so its GPU is cuda:0.
        return worker_env(self.env, self.server,
                          {RANK: str(rank), LOCAL_RANK: "0", WORLD_SIZE: str(self.count)})

    def _submit(self, rank: int) -> int:
        from hyperqueue import Job
        from hyperqueue.ffi.protocol import ResourceRequest

        extra = {self.gpu_resource: self.gpus_per_worker} if self.gpus_per_worker else None
        job = Job(name=f"hq-sweep-{self.sweep_id or 'latest'}-w{rank}", max_fails=1)
        log = f"{self.log_dir}/worker-{rank}.%{{JOB_ID}}"  # %{JOB_ID}: HQ fills it in
        job.program(
            worker_command(self.sweep_id, self.extra_args),
            env=self._task_env(rank),
            stdout=f"{log}.out",
            stderr=f"{log}.err",
            resources=ResourceRequest(cpus=self.cpus_per_worker, resources=extra),
            crash_limit=self.crash_limit,
        )
        return int(self._client.submit(job).id)

    def _job_states(self, job_ids: list[int]) -> dict[int, dict[str, Any]]:
        seen: dict[int, dict[str, Any]] = {}

        def record(status: dict[int, dict[str, Any]]) -> None:
            seen.update(status)
            raise _Snapshot

        try:
            failed = set(self._client.connection.wait_for_jobs(job_ids, record))
        except _Snapshot:
            return seen
        # It returned without calling back: every job had already ended; these ones failed.
        return {job_id: {"completed": True, "failed": int(job_id in failed), "finished": 1}
                for job_id in job_ids}

    def _exit_code(self, rank: int, status: dict[str, Any]) -> int:
        if not status.get("failed"):
            # Finished or cancelled: a cancel (SIGINT) makes the worker drain, so call it that.
            return 0 if status.get("finished") else DRAINED
        job_id = self._jobs[rank]
        failed = self._client.connection.get_failed_tasks([job_id]).get(job_id, {})
        for context in failed.values():
            code = failure_code(context.error)
            if code not in DELIBERATE:
                self.on_event(f"worker {rank} (HQ job {job_id}): {context.error} "
                              f"— log: {context.stderr or context.stdout}")
            return code
        return ERROR

    def _ended(self, rank: int, code: int) -> None:
        self._codes[rank] = code
        decision = self._slots.exited(rank, code, time.monotonic())
        if decision.action is Action.REPLACE:
            # Healthy hand-over (trial count, memory, hung trial): no backoff, no crash.
            self.on_event(f"worker {rank} {describe(code)}; submitting a fresh one")
            self._resubmit(rank)
        elif decision.action is Action.RESTART:
            self.on_event(f"worker {rank} (HQ job {self._jobs[rank]}) {exit_reason(code)}; "
                          f"resubmitting in {decision.delay_s:g} s")
        elif decision.action is Action.GIVE_UP:
            self.on_event(gave_up_text(rank, decision, self._slots.policy, exit_reason(code)))

    def _resubmit(self, rank: int) -> None:
        self._jobs[rank] = self._submit(rank)
        self._codes[rank] = None
        self._slots[rank].started(time.monotonic())


def _hq_cancel(hq: str, server_dir: Path | None, job_ids: list[str]) -> str | None:
    """Run `hq job cancel`; None if it worked, else why not."""
    where = ["--server-dir", str(server_dir)] if server_dir is not None else []
    try:
        done = subprocess.run([hq, *where, "job", "cancel", ",".join(job_ids)],
                              capture_output=True, text=True, timeout=60, check=False)
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    if done.returncode == 0:
        return None
    return done.stderr.strip() or f"exit code {done.returncode}"


def _connect(server_dir: Path | None) -> Any:
    try:
        from hyperqueue import Client
    except ImportError as exc:
        raise HyperQueueError(
            "the HyperQueue launcher needs the `hyperqueue` package (pip install hyperqueue)"
        ) from exc
    try:
        return Client(server_dir)
    except Exception as exc:  # the FFI raises a bare Exception with a Rust backtrace
        where = server_dir or "~/.hq-server (HQ's default; set HQ_SERVER_DIR or --server-dir)"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HyperQueueError(f"no HyperQueue server in {where}: {first}") from exc
