"""Putting the pieces together: register a sweep, run its controller, run a whole sweep locally."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hq_sweep import exitcodes
from hq_sweep.controller.loop import Controller, ControllerOptions, trial_cap
from hq_sweep.controller.strategy._base import Strategy
from hq_sweep.errors import HqSweepError, InvalidInput
from hq_sweep.launchers.local import LocalLauncher
from hq_sweep.queue.client import Client
from hq_sweep.queue.registry import SweepRegistry
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.server.connection import NoServerError, default_state_dir, locate_server
from hq_sweep.server.credentials import ServerRef
from hq_sweep.server.handoff import Handoff
from hq_sweep.server.process import start_server
from hq_sweep.spec.sweep import SweepSpec, parse_stored_spec

log = logging.getLogger("hq_sweep")


class SweepAborted(HqSweepError):
    """The sweep cannot go on (e.g. every worker died); says why."""


class WorkersCannotStart(SweepAborted):
    """Every worker failed to load the user's code or run its setup(): the sweep is stalled."""

    exit_code = exitcodes.UNUSABLE


def ensure_server(explicit: str | None, say: Callable[[str], None]) -> ServerRef:
    """A server: the one given or recorded, else a new persistent server started here."""
    try:
        return locate_server(explicit)
    except NoServerError:
        if explicit:
            raise
    info = start_server(default_state_dir())
    say(
        f"started an hq-sweep server at {info.redacted_url} (data in {info.state_dir}); "
        "it keeps running so `hq-sweep status`/`best` can read the results — "
        "`hq-sweep server stop` stops it"
    )
    return locate_server(state_dir=info.state_dir)  # through its connection file


class SpecMismatch(InvalidInput):
    """A sweep to resume was registered from a different sweep file."""


def register_sweep(
    connection: Client, spec: SweepSpec, spec_path: Path, sweep_id: str | None = None
) -> str:
    """Store a new sweep; its id is `sweep_id` or the spec's name, with -2, -3... when taken."""
    registry = SweepRegistry(connection)
    base_id = sweep_id or spec.sweep_name(default=spec_path.stem)
    return registry.create(base_id, _spec_json(spec), spec.spec_hash(),
                           str(spec_path.parent.resolve()))


def _spec_json(spec: SweepSpec) -> str:
    return json.dumps(spec.to_json_dict(), sort_keys=True)


def stored_spec(queue: SweepQueue) -> SweepSpec:
    """The sweep's spec as registered; a damaged one is a StoredSpecError, not a crash."""
    return parse_stored_spec(queue.meta.read().get("spec"), queue.sweep_id)


@dataclass(frozen=True, slots=True)
class Registration:
    """Which sweep a `run`/`enqueue` drives, and how it came to be that one."""

    sweep_id: str
    resumed: bool = False
    taken: str | None = None  # the id the file's name asked for, already held by another


def open_or_register(connection: Client, spec: SweepSpec, spec_path: Path,
                     sweep_id: str | None = None, resume: bool = False) -> Registration:
    """`--sweep ID`: resume ID if it exists, else register under ID. `resume`: the newest
    sweep registered under this file's name. Otherwise a new sweep under the file's name,
    or name-2, -3... when taken (saying which name was taken)."""
    registry = SweepRegistry(connection)
    base_id = sweep_id or spec.sweep_name(default=spec_path.stem)
    if resume and sweep_id is None:
        sweep_id = _newest_named(registry, base_id)
        if sweep_id is None:
            raise InvalidInput(f"--resume: no sweep named {base_id!r} on this server to resume "
                               f"(`hq-sweep list` shows the sweeps there)")
    if sweep_id is not None and registry.exists(sweep_id):
        resume_sweep(SweepQueue(connection, sweep_id), spec)
        return Registration(sweep_id, resumed=True)
    new_id = register_sweep(connection, spec, spec_path, base_id)
    return Registration(new_id, taken=base_id if new_id != base_id else None)


def _newest_named(registry: SweepRegistry, base_id: str) -> str | None:
    """The newest of `base_id`, `base_id-2`, `base_id-3`..."""
    pattern = re.compile(re.escape(base_id) + r"(-[0-9]+)?")
    named = [s for s in registry.list() if pattern.fullmatch(s)]
    return named[-1] if named else None


def resume_sweep(queue: SweepQueue, spec: SweepSpec) -> None:
    """Check `spec` is the sweep's own (run_cap aside: `--trials` may raise it; it counts
    every trial the sweep ran) and store its run_cap."""
    stored = stored_spec(queue)
    if _without_cap(stored).spec_hash() != _without_cap(spec).spec_hash():
        raise SpecMismatch(
            f"sweep {queue.sweep_id!r} was registered from a different sweep file; resume it "
            f"with the same file (`hq-sweep export --sweep {queue.sweep_id} --format json` shows "
            "its trials), or leave out --sweep to start a new sweep")
    if stored.run_cap != spec.run_cap:
        queue.meta.replace_spec(_spec_json(spec), spec.spec_hash())


def _without_cap(spec: SweepSpec) -> SweepSpec:
    return spec.model_copy(update={"run_cap": None})


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
    """`hq-sweep run` (and `hq_sweep.optimize`): controller thread + N local warm workers on
    one server. `strategy`: the controller's own (the Python API brings the user's sampler and
    pruner), else the one the spec names."""

    connection: Client
    server: ServerRef | str  # a bare URL reaches the workers in a credentials file
    sweep_id: str
    spec: SweepSpec
    workers: int
    options: ControllerOptions
    strategy: Strategy | None = None

    def start(self) -> tuple[ControllerThread, LocalLauncher]:
        queue = SweepQueue(self.connection, self.sweep_id)
        thread = ControllerThread(Controller(queue, self.spec, self.options, self.strategy))
        thread.start()
        logs = default_state_dir() / "logs" / self.sweep_id
        server = self.server if isinstance(self.server, ServerRef) else ServerRef(self.server)
        # The launcher removes a credentials file the handoff writes once it stops.
        launcher = LocalLauncher(self.workers, Handoff(server), self.sweep_id, log_dir=logs)
        launcher.start()
        return thread, launcher

    def check_workers(self, thread: ControllerThread, launcher: LocalLauncher) -> None:
        """Restart crashed workers; stop the controller if no worker is left to run trials."""
        launcher.poll()
        if not thread.is_alive() or launcher.active():
            return
        thread.abort.set()
        thread.join(timeout=10)
        logs = launcher.log_dir or default_state_dir() / "logs"
        stalled = SweepQueue(self.connection, self.sweep_id).meta.read().get("stalled")
        codes = launcher.exit_codes()
        if stalled and exitcodes.UNUSABLE in codes:
            rank = codes.index(exitcodes.UNUSABLE)
            raise WorkersCannotStart(f"workers cannot start: {stalled}\n"
                                     f"  its traceback: {logs / f'worker-{rank}.log'}")
        described = ", ".join(exitcodes.describe(c) for c in codes)
        raise SweepAborted(f"all {launcher.count} workers exited ({described}) before the sweep "
                           f"ended; see their logs in {logs}")

