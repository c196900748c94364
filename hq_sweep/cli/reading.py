"""Reading results where the sweep's data lies: the server that runs now, or, once the job
that ran it has ended, its persisted data in a state directory (`--state-dir DIR`)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer

from hq_sweep.cli.common import console
from hq_sweep.errors import InvalidInput
from hq_sweep.server.connection import live_server, resolve_redis_url
from hq_sweep.server.process import start_server, stop_server

ReadStateDirOption = Annotated[Path | None, typer.Option(
    "--state-dir", file_okay=False, show_default=False,
    help="Read the sweep from this state directory (e.g. a finished batch job's): its server "
         "if one runs, else one started here on its data for this command alone.")]


@contextlib.contextmanager
def sweep_server(redis_url: str | None, sweep: str | None,
                 state_dir: Path | None) -> Iterator[str]:
    """The URL to read `sweep` from. With `state_dir` and no live server there, a server is
    started on that directory's data (loopback only) and stopped when the command is done."""
    if state_dir is None:
        yield resolve_redis_url(redis_url, sweep=sweep)
        return
    running = live_server(state_dir)
    if running is not None:
        yield running.url
        return
    if not (state_dir / "data").is_dir():
        raise InvalidInput(f"--state-dir: {state_dir} holds no hq-sweep server data (no data/ "
                           "folder): give the state directory the sweep's server used")
    temporary = start_server(state_dir)
    console.print(f"no server runs in {state_dir}: read its data with a server started for "
                  "this command", style="dim", highlight=False)
    try:
        yield temporary.url
    finally:
        stop_server(temporary)
