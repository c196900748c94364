"""TLS for the server: the user's certificate, or a self-signed CA and certificate made here.

Without `--tls-cert/--tls-key`, `hq-sweep server start --tls` makes, with the `openssl` CLI,
in `<state dir>/tls/` (0700, every file 0600):
    ca.key, ca.crt          a CA of this state dir (kept across restarts: clients hold its path)
    server.key, server.crt  the server's certificate, signed by that CA and made anew at each
                            start, with every name clients may use as a subjectAltName
                            (localhost, 127.0.0.1, ::1, this node's names, the bind and
                            advertised addresses), so clients check the host name as usual.
"""

from __future__ import annotations

import ipaddress
import shutil
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path

from hq_sweep.errors import HqSweepError, InvalidInput

__all__ = ["TLS_DIR_NAME", "TlsError", "TlsFiles", "TlsRequest", "prepare_tls"]

TLS_DIR_NAME = "tls"
_CA_DAYS = 3650
_CERT_DAYS = 825  # the longest lifetime clients that follow the CA/B rules accept
_EC = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


class TlsError(HqSweepError):
    """Certificates could not be made or used."""


@dataclass(frozen=True)
class TlsRequest:
    """What `--tls` asked for: the user's files, or none of them (self-signed, made here)."""

    cert: Path | None = None
    key: Path | None = None
    ca: Path | None = None


@dataclass(frozen=True)
class TlsFiles:
    """The files the server serves TLS with; `ca` is what clients verify it against
    (None: the system's trusted CAs)."""

    cert: Path
    key: Path
    ca: Path | None


def _checked_user_files(request: TlsRequest) -> TlsFiles:
    if request.cert is None or request.key is None:
        raise InvalidInput("--tls-cert and --tls-key go together (--tls-ca with them): give "
                           "both, or none (then hq-sweep makes a self-signed certificate)")
    named = {"--tls-cert": request.cert, "--tls-key": request.key, "--tls-ca": request.ca}
    for option, path in named.items():
        if path is not None and not path.expanduser().is_file():
            raise InvalidInput(f"{option}: {path} is not a readable file")
    ca = request.ca.expanduser().resolve() if request.ca else None
    return TlsFiles(request.cert.expanduser().resolve(), request.key.expanduser().resolve(), ca)


def _subject_alt_names(hosts: list[str]) -> str:
    names = ["localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn(), *hosts]
    entries: list[str] = []
    for name in dict.fromkeys(n.strip("[]") for n in names if n and n not in ("*", "0.0.0.0")):
        try:
            ipaddress.ip_address(name)
        except ValueError:
            entries.append(f"DNS:{name}")
        else:
            if name not in ("::",):
                entries.append(f"IP:{name}")
    return ",".join(dict.fromkeys(entries))


def _openssl(openssl: str, args: list[str], directory: Path) -> None:
    # umask 077: keys are 0600 from the moment they exist.
    done = subprocess.run([openssl, *args], cwd=directory, capture_output=True, text=True,
                          umask=0o077, check=False, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise TlsError(f"openssl {args[0]} failed in {directory}: {last}")


def _make_ca(openssl: str, directory: Path) -> None:
    _openssl(openssl, ["req", "-x509", *_EC, "-keyout", "ca.key", "-out", "ca.crt",
                       "-days", str(_CA_DAYS), "-subj", "/CN=hq-sweep CA",
                       "-addext", "basicConstraints=critical,CA:TRUE",
                       "-addext", "keyUsage=critical,keyCertSign,cRLSign"], directory)


def _make_server_cert(openssl: str, directory: Path, hosts: list[str]) -> None:
    extensions = directory / "server.ext"
    extensions.write_text(f"subjectAltName={_subject_alt_names(hosts)}\n"
                          "basicConstraints=critical,CA:FALSE\n"
                          "keyUsage=critical,digitalSignature,keyEncipherment\n"
                          "extendedKeyUsage=serverAuth\n")
    _openssl(openssl, ["req", "-new", *_EC, "-keyout", "server.key", "-out", "server.csr",
                       "-subj", "/CN=hq-sweep server"], directory)
    _openssl(openssl, ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                       "-CAcreateserial", "-days", str(_CERT_DAYS), "-extfile", "server.ext",
                       "-out", "server.crt"], directory)
    (directory / "server.csr").unlink(missing_ok=True)


def _self_signed(state_dir: Path, hosts: list[str]) -> TlsFiles:
    openssl = shutil.which("openssl")
    if openssl is None:
        raise TlsError("--tls without --tls-cert/--tls-key makes a self-signed certificate "
                       "with the `openssl` command, which is not on PATH: install it, or "
                       "give your own certificate with --tls-cert, --tls-key (and --tls-ca)")
    directory = state_dir / TLS_DIR_NAME
    directory.mkdir(mode=0o700, exist_ok=True)
    directory.chmod(0o700)
    if not ((directory / "ca.crt").is_file() and (directory / "ca.key").is_file()):
        _make_ca(openssl, directory)
    _make_server_cert(openssl, directory, hosts)
    for path in directory.iterdir():
        path.chmod(0o600)
    return TlsFiles(directory / "server.crt", directory / "server.key", directory / "ca.crt")


def prepare_tls(request: TlsRequest, state_dir: Path, hosts: list[str]) -> TlsFiles:
    """The user's files when given (checked to exist), else a self-signed set for `hosts`
    (the names clients will use) in the state dir."""
    if request == TlsRequest():
        return _self_signed(state_dir, hosts)
    return _checked_user_files(request)
