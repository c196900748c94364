"""What every command shares: options, console, logging, and turning errors into one line."""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text
from typer.core import TyperGroup

from hq_sweep.errors import EXIT_FAILURE, HqSweepError
from hq_sweep.queue.client import connect, redact
from hq_sweep.queue.redaction import redact_text
from hq_sweep.queue.registry import SweepRegistry
from hq_sweep.queue.sweep import SweepQueue
from hq_sweep.server.credentials import ServerRef


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


DEBUG_VAR = "HQ_SWEEP_DEBUG"


def app_options(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print hq-sweep's version and exit.")] = False,
    debug: Annotated[bool, typer.Option(
        "--debug", envvar=DEBUG_VAR, show_envvar=True,
        help="Show the traceback behind an error, here and in the workers and controllers "
        "this command starts.")] = False,
) -> None:
    # The top-level app's own options (its callback); deliberately no docstring: the app's
    # help text is the one given to typer.Typer.
    del version
    if debug:  # the environment carries it to every process started from here
        os.environ[DEBUG_VAR] = "1"


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def debug_wanted() -> bool:
    """`hq-sweep --debug ...` (which sets it) or $HQ_SWEEP_DEBUG: show tracebacks."""
    return os.environ.get(DEBUG_VAR, "").strip().lower() in ("1", "true", "yes", "on")


def _print_traceback(exc: BaseException) -> None:
    for chunk in traceback.format_exception(exc):
        sys.stderr.write(redact_text(redact(chunk)))  # no URL in it may show its password
    sys.stderr.flush()


def _report(exc: HqSweepError) -> None:
    for line in map(redact_text, exc.lines()):  # a URL typed where a path goes, say
        if exc.prefixed:
            console.print(Text.assemble(("error:", "bold red"), " ", line), soft_wrap=True)
        else:
            console.print(Text(line, style="red"), soft_wrap=True)


# What typer's click turns into an exit itself (usage errors: 2; "Aborted!"; a closed pipe).
_CLICK_EXITS = (typer.Exit, typer.Abort, typer.TyperException, BrokenPipeError)


@contextlib.contextmanager
def error_boundary() -> Iterator[None]:
    """Known failures become their message and exit code; anything else (a bug) one line,
    `internal error: Type: message`, and exit 1. Never a traceback unless `--debug`."""
    try:
        yield
    except _CLICK_EXITS:
        raise
    except HqSweepError as exc:
        if debug_wanted():
            _print_traceback(exc)
        _report(exc)
        raise typer.Exit(exc.exit_code) from None
    except Exception as exc:  # a bug: say what, hide the traceback, keep the password out
        if debug_wanted():
            _print_traceback(exc)
            hint = ""
        else:
            hint = " (run with --debug for the traceback)"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        what = redact(f"{type(exc).__name__}: {first}" if first else type(exc).__name__)
        console.print(Text.assemble(("internal error:", "bold red"), f" {what}{hint}"),
                      soft_wrap=True)
        raise typer.Exit(EXIT_FAILURE) from None


def friendly_errors(func: F) -> F:
    """Known failures become one clear line and a non-zero exit, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with error_boundary():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class HqSweepGroup(TyperGroup):
    """The top-level app: every error, also one raised outside a command's body (an option's
    callback, a sub-app), passes the same boundary."""

    def invoke(self, ctx: Any) -> Any:  # typer's vendored click.Context
        with error_boundary():
            return super().invoke(ctx)


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


def open_sweep(url: str | ServerRef, sweep: str | None,
               patience_s: float | None = None) -> SweepQueue:
    """The sweep named, or the newest one on the server; a clear error when there is none.
    Given a ServerRef, the connection follows a server that moves (see `ServerRef.connect`),
    waiting out an outage under each command within `patience_s`."""
    connection = connect(url) if isinstance(url, str) else url.connect(patience_s=patience_s)
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
