"""What a server start will be: which binary, which secrets, which TLS files (no process yet).

A successor of a server that died keeps its secrets (`successor_secrets`); a binary with ACLs
gets the sweep user beside the default user (`server.acl`), one without gets requirepass
alone; `--tls` is refused at once, with the way out, when the binary has no TLS.
"""

from __future__ import annotations

import secrets
import socket
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hq_sweep.errors import InvalidInput
from hq_sweep.server import acl
from hq_sweep.server.binary import (
    ENV_SERVER_BINARY,
    find_server_binary,
    supports_tls,
    version_line,
)
from hq_sweep.server.config import Secrets
from hq_sweep.server.info import WILDCARD_BINDS, ServerInfo
from hq_sweep.server.tls import TlsFiles, TlsRequest, prepare_tls

__all__ = ["Plan", "TlsUnsupportedError", "advertised_host", "plan_start", "recorded_info",
           "successor_secrets", "tls_unsupported"]


class TlsUnsupportedError(InvalidInput):
    """`--tls` with a server binary built without TLS (exit 2, as bad input)."""


def _short_version(binary: Path) -> str:
    words = version_line(binary).split()  # "Valkey server v=8.1.8 sha=..."
    return f"{words[0]} {words[2].removeprefix('v=')}" if len(words) > 2 else "unknown version"


def tls_unsupported(binary: Path) -> TlsUnsupportedError:
    return TlsUnsupportedError(
        f"--tls: {binary} ({_short_version(binary)}) was built without "
        f"TLS; name a TLS-capable redis-server or valkey-server with --server-binary PATH "
        f"(or ${ENV_SERVER_BINARY}), e.g. a distribution's redis-server (Redis >= 6)"
    )


def advertised_host(bind: str) -> str:
    # Clients elsewhere in the cluster need a name for a wildcard bind, not 0.0.0.0.
    return socket.gethostname() if bind in WILDCARD_BINDS else bind


@dataclass(frozen=True)
class Plan:
    """What to start: which binary, logging in how, serving TLS with which files."""

    binary: Path
    secrets: Secrets
    host: str
    bind: str
    tls: TlsFiles | None = None


def plan_start(state_dir: Path, *, password: str, admin_password: str | None, bind: str,
          advertise: str | None, tls: TlsRequest | None, binary: Path | str | None) -> Plan:
    found = find_server_binary(binary)
    host = advertise or advertised_host(bind)
    version = version_line(found)
    if acl.supports_acl(version):
        admin = admin_password or secrets.token_urlsafe(32)
        logins = Secrets(password, admin, acl.SWEEP_USER, version)
    else:  # requirepass alone: one secret, the default user's, for everything
        single = admin_password or password
        logins = Secrets(single, single)
    if tls is None:
        return Plan(found, logins, host, bind)
    if not supports_tls(found):
        raise tls_unsupported(found)
    return Plan(found, logins, host, bind, prepare_tls(tls, state_dir, [host, bind]))


def recorded_info(plan: Plan, state_dir: Path, port: int, pid: int) -> ServerInfo:
    logins = plan.secrets
    ca = plan.tls.ca if plan.tls is not None else None
    return ServerInfo(
        host=plan.host, port=port, password=logins.password, pid=pid, state_dir=state_dir,
        bind=plan.bind, started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        user=logins.user, tls=plan.tls is not None, ca_file=str(ca) if ca else "",
        admin_password="" if logins.admin_password == logins.password else logins.admin_password,
    )  # fmt: skip


def successor_secrets(dead: ServerInfo | None, new_password: bool) -> tuple[str, str | None]:
    """(clients' password, admin password or None for a new one) for a new server."""
    if new_password or dead is None:
        return secrets.token_urlsafe(32), None
    if dead.user:
        return dead.password, dead.admin_secret
    # Recorded before ACLs: its one secret stays the default user's, so clients holding its
    # URL still get in; the sweep user gets a new one.
    return secrets.token_urlsafe(32), dead.password
