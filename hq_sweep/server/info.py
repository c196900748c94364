"""`ServerInfo`: what the connection file records about a server hq-sweep started.

Two secrets (since ACL users): clients log in as `user` with `password`; the default user's
`admin_password` is for server questions alone (`queue.admin`: liveness of the pid, INFO,
SHUTDOWN). A file written before ACLs has neither `user` nor `admin_password`: its one
password is the default user's, good for both, and it still reads and works. With `tls` the
URL is `rediss://...?ssl_ca_certs=CA` (redis-py reads the CA path from the query).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

__all__ = ["WILDCARD_BINDS", "ServerInfo"]

# Bind addresses that mean "every interface": clients on the same node use loopback.
WILDCARD_BINDS = frozenset({"0.0.0.0", "*", "::", "::*", "-::*"})
_REQUIRED: dict[str, type] = {"host": str, "port": int, "password": str, "pid": int,
                              "state_dir": str, "bind": str, "node": str, "started_at": str}
_OPTIONAL: dict[str, type] = {"user": str, "admin_password": str, "tls": bool, "ca_file": str}


@dataclass(frozen=True)
class ServerInfo:
    """A running (or recorded) hq-sweep server. `host` is the address clients should use."""

    host: str
    port: int
    password: str = field(repr=False)  # keep it out of reprs, logs and assertion output
    pid: int
    state_dir: Path
    bind: str = "127.0.0.1"
    # The pid is only meaningful on the machine that started the server: state dirs often
    # live on a shared home file system that compute nodes read too.
    node: str = field(default_factory=socket.gethostname)
    started_at: str = ""
    user: str = ""  # the ACL user clients log in as; "": the default user
    admin_password: str = field(default="", repr=False)  # "": the same as `password`
    tls: bool = False
    ca_file: str = ""  # the CA clients verify the server with; "": the system's

    @property
    def admin_secret(self) -> str:
        """The default user's password: for `queue.admin`'s server questions only."""
        return self.admin_password or self.password

    def probe_host(self) -> str:
        """The address to reach the server at from this machine: on its own node, the
        address it listens on (an advertised name may not resolve there)."""
        if self.node == socket.gethostname():
            if self.bind in WILDCARD_BINDS:
                return "::1" if ":" in self.bind else "127.0.0.1"
            return self.bind
        return self.host

    @property
    def url(self) -> str:
        """Full URL including the password (for clients, never for display)."""
        return self._url(self.user, quote(self.password, safe=""))

    @property
    def redacted_url(self) -> str:
        """The URL with the password replaced by `***`, safe to print."""
        return self._url(self.user, "***")

    @property
    def admin_url(self) -> str:
        """The default user's URL, for `queue.admin` alone (never for display)."""
        return self._url("", quote(self.admin_secret, safe=""))

    def _url(self, user: str, secret: str) -> str:
        # IPv6 literals need brackets inside a URL.
        host = self.host
        shown = f"[{host}]" if ":" in host and not host.startswith("[") else host
        scheme = "rediss" if self.tls else "redis"
        with_ca = self.tls and self.ca_file
        query = f"?ssl_ca_certs={quote(self.ca_file, safe='/')}" if with_ca else ""
        return f"{scheme}://{quote(user, safe='')}:{secret}@{shown}:{self.port}/0{query}"

    def to_json(self) -> dict[str, Any]:
        """The connection-file record (includes the passwords and full URL)."""
        return {
            "host": self.host, "port": self.port, "password": self.password, "pid": self.pid,
            "state_dir": str(self.state_dir), "bind": self.bind, "node": self.node,
            "started_at": self.started_at, "user": self.user,
            "admin_password": self.admin_password, "tls": self.tls, "ca_file": self.ca_file,
            "url": self.url,
        }  # fmt: skip

    @classmethod
    def from_json(cls, data: object) -> ServerInfo:
        """Validate a connection-file record; raises ValueError naming the bad field. The
        fields added with ACLs and TLS may be missing (a file from an older version)."""
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        for name, kind in (_REQUIRED | _OPTIONAL).items():
            value = data.get(name)
            if name in _OPTIONAL and value is None:
                continue
            if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
                raise ValueError(f"field {name!r} missing or not a {kind.__name__}")
        given = {name: data[name] for name in _OPTIONAL if data.get(name) is not None}
        fields = {name: data[name] for name in _REQUIRED}
        return cls(**{**fields, "state_dir": Path(data["state_dir"]), **given})
