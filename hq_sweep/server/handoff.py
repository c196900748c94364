"""Telling a child process where the Redis server is without handing it the secret.

A `Handoff` gives the variables for a child's environment: the path of the connection file
the URL came from, or else of a credentials file it writes (0600, in `credentials/` of the
state dir, a random name) and removes on `close()` — when the launcher that needed it ends.
Paths are absolute: HyperQueue tasks and srun steps start in other directories.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from types import TracebackType

from hq_sweep.env import REDIS_URL_FILE
from hq_sweep.server.connection import default_state_dir, write_private_file
from hq_sweep.server.credentials import ServerRef

__all__ = ["CREDENTIALS_DIR", "Handoff", "write_credentials_file"]

CREDENTIALS_DIR = "credentials"


def write_credentials_file(url: str, state_dir: Path | None = None, name: str | None = None
                           ) -> Path:
    """A new 0600 credentials file holding `url` in `state_dir/credentials/`; its path."""
    directory = (state_dir or default_state_dir()).expanduser().resolve() / CREDENTIALS_DIR
    path = directory / f"{name or secrets.token_hex(8)}.json"
    write_private_file(path, json.dumps({"url": url}) + "\n")
    directory.chmod(0o700)  # write_private_file's mkdir mode misses a directory made earlier
    return path


class Handoff:
    """The variables that lead a child to `server`: `env`, written on first use; `close()`
    removes a credentials file this handoff wrote (a connection file stays: it is the server's).
    """

    def __init__(self, server: ServerRef, state_dir: Path | None = None) -> None:
        self.server = server
        self._state_dir = state_dir
        self._written: Path | None = None

    @property
    def env(self) -> dict[str, str]:
        if self.server.file is not None and self.server.file_var is not None:
            return {self.server.file_var: str(self.server.file.expanduser().resolve())}
        if self._written is None:
            self._written = write_credentials_file(self.server.url, self._state_dir)
        return {REDIS_URL_FILE: str(self._written)}

    def close(self) -> None:
        if self._written is not None:
            self._written.unlink(missing_ok=True)
            self._written = None

    def __enter__(self) -> Handoff:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
