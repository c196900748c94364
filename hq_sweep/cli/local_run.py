"""Putting the pieces together: register a sweep, run its controller, run a whole sweep locally."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hq_sweep import exitcodes
from hq_sweep.controller.loop import Controller, ControllerOptions, trial_cap
from hq_sweep.errors import HqSweepError
from hq_sweep.launchers.local import LocalLauncher
from hq_sweep.queue.client import Client
from hq_sweep.queue.registry import SweepRegistry
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.server.connection import NoServerError, default_state_dir, resolve_redis_url
from hq_sweep.server.process import start_server
from hq_sweep.spec.sweep import SweepSpec, parse_spec

log = logging.getLogger("hq_sweep")


class SweepAborted(HqSweepError):
    """The sweep cannot go on (e.g. every worker died); says why."""


def ensure_server(explicit: str | None, say: Callable[[str], None]) -> str:
    """A server URL: the one given or recorded, else a new persistent server started here."""
    try:
        return resolve_redis_url(explicit)
    except NoServerError:
        if explicit:
            raise
    info = start_server(default_state_dir())
    say(
        f"started an hq-sweep server at {info.redacted_url} (data in {info.state_dir}); "
        "it keeps running so `hq-sweep status`/`best` can read the results — "
        "`hq-sweep server stop` stops it"
    )
    return info.url


def register_sweep(
    connection: Client, spec: SweepSpec, spec_path: Path, sweep_id: str | None = None
) -> str:
    """Store a new sweep; its id is `sweep_id` or the spec's name, with -2, -3... when taken."""
    registry = SweepRegistry(connection)
    spec_json = json.dumps(spec.to_json_dict(), sort_keys=True)
    base_id = sweep_id or spec.sweep_name(default=spec_path.stem)
    return registry.create(base_id, spec_json, spec.spec_hash(), str(spec_path.parent.resolve()))


def stored_spec(queue: SweepQueue) -> SweepSpec:
    meta = queue.meta.read()
    if not meta.get("spec"):
        raise KeyError(f"no sweep {queue.sweep_id!r} on this server")
    return parse_spec(json.loads(meta["spec"]), source=f"sweep {queue.sweep_id}")


def sweep_total(spec: SweepSpec) -> int | None:
    """The trials the sweep will run, when known (for progress bars)."""
    from hq_sweep.controller.space import build_space

    return trial_cap(spec, build_space(spec).grid_size() if spec.is_grid else None)


class ControllerThread(threading.Thread):
    """Runs a controller beside the monitor in `hq-sweep run`; keeps its error for the caller."""

    def __init__(self, controller: Controller) -> None:
        super().__init__(name="hq-sweep-controller", daemon=True)
        self.controller = controller
        self.reason: str | None = None
        self.error: BaseException | None = None
        self.abort = threading.Event()

    def run(self) -> None:
        def check() -> None:
            if self.abort.is_set():
                raise SweepAborted("stopped")

        try:
            self.reason = self.controller.run(on_tick=check)
        except BaseException as exc:  # handed to the main thread, which reports it
            self.error = exc


@dataclass
class LocalRun:
    """`hq-sweep run`: controller thread + N local warm workers on one server."""

    connection: Client
    url: str
    sweep_id: str
    spec: SweepSpec
    workers: int
    options: ControllerOptions

    def start(self) -> tuple[ControllerThread, LocalLauncher]:
        queue = SweepQueue(self.connection, self.sweep_id)
        thread = ControllerThread(Controller(queue, self.spec, self.options))
        thread.start()
        logs = default_state_dir() / "logs" / self.sweep_id
        launcher = LocalLauncher(self.workers, self.url, self.sweep_id, log_dir=logs)
        launcher.start()
        return thread, launcher

    @staticmethod
    def check_workers(thread: ControllerThread, launcher: LocalLauncher) -> None:
        """Restart crashed workers; stop the controller if no worker is left to run trials."""
        launcher.poll()
        if thread.is_alive() and not launcher.active():
            thread.abort.set()
            thread.join(timeout=10)
            codes = ", ".join(exitcodes.describe(c) for c in launcher.exit_codes())
            raise SweepAborted(
                f"all {launcher.count} workers exited ({codes}) before the sweep ended; "
                f"see their logs in {default_state_dir() / 'logs'}"
            )

