"""One `hq_sweep.optimize` call at work: its server, its sweep, the controller (in a thread of
the caller's process, with the caller's sampler and pruner) and the local warm workers, as
`hq-sweep run` runs them (`cli.local_run`)."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from hq_sweep.api.objective import InvalidArgument
from hq_sweep.api.progress import Update, progress
from hq_sweep.cli.local_run import ControllerThread, LocalRun
from hq_sweep.controller.loop import ControllerOptions
from hq_sweep.controller.strategy.optuna_ask_tell import OptunaAskTell
from hq_sweep.env import RANK
from hq_sweep.launchers.local import LocalLauncher
from hq_sweep.queue.client import Client
from hq_sweep.queue.lifecycle import request_stop
from hq_sweep.queue.registry import SweepRegistry
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.server.connection import resolve_redis_url
from hq_sweep.server.embedded import EmbeddedServer
from hq_sweep.spec.sweep import SweepSpec

_TICK_S = 0.2  # how often the caller's thread checks workers, the clock and the bar


@dataclass(frozen=True, slots=True)
class Plan:
    """What to run: the sweep, where workers import the objective from, how many of them,
    for how long at most, with a progress bar or not."""

    spec: SweepSpec
    base_dir: Path
    workers: int
    timeout: float | None
    show_progress: bool


def refuse_inside_a_worker() -> None:
    """A worker imports the objective's module: if that module calls `optimize` when
    imported, each worker would start a sweep of its own."""
    if RANK in os.environ:
        raise InvalidArgument(
            f"hq_sweep.optimize called inside an hq-sweep worker (${RANK} is set): the module "
            "that defines the objective calls it when imported; put the call under "
            "`if __name__ == \"__main__\":`")


@contextlib.contextmanager
def sweep_server(redis_url: str | None) -> Iterator[str]:
    """The server's URL: `redis_url`, else a private server, stopped (and its data removed)
    when the block ends."""
    if redis_url is not None:
        yield resolve_redis_url(redis_url)
        return
    with EmbeddedServer() as server:
        yield server.url


def register(connection: Client, plan: Plan) -> SweepQueue:
    """A new sweep under the spec's name (-2, -3... when taken on a shared server)."""
    spec = plan.spec
    sweep_id = SweepRegistry(connection).create(
        spec.sweep_name(default="optimize"), json.dumps(spec.to_json_dict(), sort_keys=True),
        spec.spec_hash(), str(plan.base_dir))
    return SweepQueue(connection, sweep_id)


def run_sweep(url: str, queue: SweepQueue, plan: Plan, strategy: OptunaAskTell) -> None:
    """Run the sweep to its end (run_cap, timeout, the sampler's own); raise what stopped it
    otherwise (WorkersCannotStart, KeyboardInterrupt, the controller's error). Workers are
    gone when this returns or raises."""
    local = LocalRun(queue.connection, url, queue.sweep_id, plan.spec, plan.workers,
                     ControllerOptions(), strategy)
    thread, launcher = local.start()
    try:
        with progress(queue, plan.spec.run_cap, plan.show_progress) as update:
            _follow(local, thread, launcher, plan.timeout, update)
    except BaseException:
        launcher.stop()  # the controller still answers the suggests of trials finishing now
        thread.abort.set()
        raise
    finally:
        if not launcher.wait(30):
            launcher.stop()
        thread.join(timeout=10)
    if thread.error is not None:
        raise thread.error


def _follow(local: LocalRun, thread: ControllerThread, launcher: LocalLauncher,
            timeout: float | None, update: Update) -> None:
    """Until the controller ends: keep workers running, stop asking once `timeout` passed
    (as `hq-sweep stop`: running trials finish), update the bar."""
    deadline = None if timeout is None else time.monotonic() + timeout
    queue = SweepQueue(local.connection, local.sweep_id)
    while thread.is_alive():
        local.check_workers(thread, launcher)
        if deadline is not None and time.monotonic() >= deadline:
            request_stop(queue, "stop")
            deadline = None
        update()
        thread.join(timeout=_TICK_S)
