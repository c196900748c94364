"""A private server for tests and `hq-sweep run`: started here, always stopped on exit."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import TracebackType

from hq_sweep.server.connection import ServerInfo
from hq_sweep.server.process import start_locked, stop_server


class EmbeddedServer:
    """A private server for tests and `hq-sweep run`; always stopped when the block exits.

    Starts in `directory` (default: a temporary directory, removed on exit) on a free port
    with a fresh password and AOF persistence, and writes a connection file there, so child
    processes can find it through `HQ_SWEEP_STATE_DIR` instead of a URL in their environment.
    `restart()` keeps port, password and data: the AOF is replayed.
    """

    def __init__(
        self, directory: Path | None = None, *, port: int | None = None, bind: str = "127.0.0.1"
    ) -> None:
        self._owns_dir = directory is None
        self._directory = directory.expanduser().resolve() if directory else None
        self._requested_port = port
        self._bind = bind
        self._password = secrets.token_urlsafe(32)
        self._proc: subprocess.Popen[bytes] | None = None
        self._info: ServerInfo | None = None

    def __enter__(self) -> EmbeddedServer:
        try:
            self.start()
        except BaseException:
            self._cleanup_dir()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:  # fmt: skip
        try:
            self.stop()
        finally:
            self._cleanup_dir()

    @property
    def info(self) -> ServerInfo:
        if self._info is None:
            raise RuntimeError("EmbeddedServer has not been started")
        return self._info

    @property
    def url(self) -> str:
        """Full URL, password included (`info.redacted_url` is the one to print)."""
        return self.info.url

    @property
    def port(self) -> int:
        return self.info.port  # kept across restarts

    @property
    def password(self) -> str:
        """The clients' (the sweep user's) password, the one in `url`."""
        return self.info.password

    @property
    def admin_url(self) -> str:
        """The default user's URL: for tests' FLUSHALL, CONFIG GET and the like."""
        return self.info.admin_url

    @property
    def pid(self) -> int:
        return self.info.pid  # changes with every (re)start

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server (no-op while running); reuses the port after the first start."""
        if self.running:
            return
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="hq-sweep-redis-"))
        port = self._info.port if self._info else self._requested_port
        admin_password = self._info.admin_secret if self._info else None  # kept, as the port
        self._proc, self._info = start_locked(
            self._directory, password=self._password, port=port, bind=self._bind,
            new_session=True, admin_password=admin_password,
        )

    def stop(self, timeout: float = 10) -> None:
        """Graceful SHUTDOWN (the AOF is flushed), escalating to signals; idempotent."""
        if self._proc is None:
            return
        try:
            stop_server(self.info, timeout)
        finally:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=1)  # settle the handle (stop_server reaped it)
            self._proc = None

    def restart(self) -> None:
        """Stop and start again with the same port, password and data directory."""
        self.stop()
        self.start()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would (writes of the last second may be lost)."""
        if self._proc is None:
            return
        self._proc.kill()
        self._proc.wait()
        self._proc = None

    def _cleanup_dir(self) -> None:
        if self._owns_dir and self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
