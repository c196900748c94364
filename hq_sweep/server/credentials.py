"""Where a client's Redis URL came from, and the credentials files that carry a URL to children.

The URL holds the password, so hq-sweep never puts it in a child's environment or argv. A
child gets the path of a 0600 file instead (`hq_sweep.env`): `$HQ_SWEEP_CONNECTION_FILE`, the
server's connection file, when the URL was read from one; else `$HQ_SWEEP_REDIS_URL_FILE`, a
credentials file (`{"url": "redis://..."}`) written for a URL given as `--redis` or
`$HQ_SWEEP_REDIS_URL` (`server.handoff`). A client that read its URL from either file reads
it again when it loses the server for a while (`ServerRef.reread`, used by
`queue.repoint`), so a server that moved is found without restarting anything.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hq_sweep.errors import InvalidInput
from hq_sweep.queue.client import Client, connect

__all__ = ["CredentialsFileError", "ServerRef", "check_private", "read_credentials_file"]


class CredentialsFileError(InvalidInput):
    """A credentials file is missing, unreadable, readable by others, or not one."""


@dataclass(frozen=True)
class ServerRef:
    """A Redis URL and, when it was read from a file, that file (and how to read it again)."""

    url: str = field(repr=False)  # holds the password: kept out of reprs and assertion output
    # The connection or credentials file the URL came from; None: given as a URL.
    file: Path | None = None
    # The variable that names `file` to a child (env.CONNECTION_FILE or env.REDIS_URL_FILE).
    file_var: str | None = None
    # Reads `file` again: the URL it holds now.
    reread: Callable[[], str] | None = field(default=None, repr=False, compare=False)

    def connect(self, **options: Any) -> Client:
        """A client that follows the server when `file` names another one (see module doc)."""
        return connect(self.url, reread=self.reread, **options)


def check_private(path: Path) -> None:
    """Refuse a file that others may read or write: it holds the server's password."""
    try:
        info = path.stat()
    except OSError as exc:
        raise CredentialsFileError(f"cannot read {path}: {exc.strerror}") from exc
    loose = stat.S_IMODE(info.st_mode) & 0o077
    if loose:
        raise CredentialsFileError(
            f"{path} is readable or writable by others (mode {stat.S_IMODE(info.st_mode):04o}): "
            f"it holds a Redis password; run `chmod 600 {path}` (and change the password if "
            "others may have read it)")
    if info.st_uid != os.getuid():
        raise CredentialsFileError(f"{path} belongs to another user (uid {info.st_uid})")


def read_credentials_file(path: Path) -> str:
    """The URL in credentials file `path`, after checking it is private (0600, ours)."""
    check_private(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CredentialsFileError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise CredentialsFileError(f"{path} is not a credentials file (not JSON: {exc})") from exc
    url = data.get("url") if isinstance(data, dict) else None
    if not isinstance(url, str) or not url.strip():
        raise CredentialsFileError(f'{path} is not a credentials file (no "url" string)')
    return url.strip()
