"""What every command shares: options, console, logging, and turning errors into one line."""

from __future__ import annotations

import functools
import importlib.metadata
import logging
import sys
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


class PipeConsole(Console):
    """A Console that hard-wraps only for a terminal: into a pipe, a file or a batch log each
    line stays one line however long (a rich Console would break it at 80 columns)."""

    def print(self, *objects: Any, soft_wrap: bool | None = None, **kwargs: Any) -> None:
        if soft_wrap is None:
            soft_wrap = self.soft_wrap or not self.is_terminal
        super().print(*objects, soft_wrap=soft_wrap, **kwargs)


# Progress, logs, errors, warnings and hints: stderr. Results: stdout, through `out()`.
console = PipeConsole(stderr=True)


def out() -> Console:
    """The console for a command's results (stdout). Built per call, so that it writes to and
    decides colours and wrapping for whatever sys.stdout is now (CliRunner swaps it)."""
    return PipeConsole(highlight=False)


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
ProgressEveryOption = Annotated[float, typer.Option(
    "--progress-every", min=1.0, help="Seconds between plain progress lines where there is no "
    "terminal (a batch log, a pipe).")]
CountOption = Annotated[int | None, typer.Option(
    "--count", min=1, show_default=False,
    help="Trials each worker runs before it leaves for good (like `wandb agent --count`).")]

F = TypeVar("F", bound=Callable[..., Any])


def _print_version(wanted: bool) -> None:
    if not wanted:
        return
    try:
        version = importlib.metadata.version("hq-sweep")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree, not installed
        from hq_sweep import __version__ as version
    typer.echo(f"hq-sweep {version}")
    raise typer.Exit(0)


def app_options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print hq-sweep's version and exit.")] = False,
) -> None:
    # The top-level app's own options (its callback); deliberately no docstring: the app's
    # help text is the one given to typer.Typer.
    del version


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
    """Log records to stderr: rich's columns in a terminal, plain unwrapped lines elsewhere
    (a worker's log file keeps each message and traceback line whole)."""
    handler: logging.Handler
    if console.is_terminal:
        handler = RichHandler(console=console, show_path=False, rich_tracebacks=False)
        fmt = "%(message)s"
    else:
        handler = logging.StreamHandler(sys.stderr)
        fmt = "%(asctime)s %(levelname)-7s %(message)s"
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format=fmt,
                        handlers=[handler], force=True)
    # Optuna's INFO lines ("A new study created in memory...") are the controller's internals.
    for noisy in ("rq.worker", "rq.queue", "rq", "optuna"):
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
