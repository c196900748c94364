"""What every command shares: options, console, logging, and turning errors into one line."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text

from hq_sweep.errors import EXIT_FAILURE, HqSweepError
from hq_sweep.queue.client import connect
from hq_sweep.queue.registry import SweepRegistry
from hq_sweep.queue.sweep import SweepQueue

console = Console(stderr=True)

RedisOption = Annotated[
    str | None,
    typer.Option(
        "--redis",
        envvar="HQ_SWEEP_REDIS_URL",
        show_envvar=True,
        help="Redis URL (default: the server started by `hq-sweep server start`).",
    ),
]
SweepOption = Annotated[
    str | None, typer.Option("--sweep", "-s", help="Sweep id (default: the newest sweep).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")]
CountOption = Annotated[int | None, typer.Option(
    "--count", min=1, show_default=False,
    help="Trials each worker runs before it leaves for good (like `wandb agent --count`).")]

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def friendly_errors(func: F) -> F:
    """Known failures become one clear line and a non-zero exit, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HqSweepError as exc:
            for line in exc.lines():
                if exc.prefixed:
                    console.print(Text.assemble(("error:", "bold red"), " ", line),
                                  soft_wrap=True)
                else:
                    console.print(Text(line, style="red"), soft_wrap=True)
            raise typer.Exit(exc.exit_code) from None

    return wrapper  # type: ignore[return-value]


def setup_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False, rich_tracebacks=False)],
        force=True,
    )
    for noisy in ("rq.worker", "rq.queue", "rq"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def open_sweep(url: str, sweep: str | None) -> SweepQueue:
    """The sweep named, or the newest one on the server; a clear error when there is none."""
    connection = connect(url)
    registry = SweepRegistry(connection)
    if sweep is None:
        sweep = registry.latest()
        if sweep is None:
            fail(
                "no sweeps on this server yet: start one with `hq-sweep run` or `hq-sweep enqueue`"
            )
    elif not registry.exists(sweep):
        known = ", ".join(registry.list()[-10:]) or "none"
        fail(f"no sweep {sweep!r} on this server (known: {known})")
    return SweepQueue(connection, sweep)
