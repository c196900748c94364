"""Credentials files and handoffs (issue 14): how a child is told where the server is without
the secret, and what `locate_server` makes of it. Files on disk; no server needed."""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path

import pytest

from hq_sweep.env import SERVER_VARS, without_server_vars
from hq_sweep.server import connection
from hq_sweep.server.connection import (
    ServerInfo,
    locate_server,
    resolve_redis_url,
    write_connection_file,
)
from hq_sweep.server.credentials import CredentialsFileError, ServerRef, read_credentials_file
from hq_sweep.server.handoff import Handoff, write_credentials_file

URL = "redis://:s3cr3t-Pa55word_xyz@127.0.0.1:6390/0"


def test_a_credentials_file_is_private_and_read_back(tmp_path: Path) -> None:
    path = write_credentials_file(URL, tmp_path)
    assert path.parent == tmp_path.resolve() / "credentials"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert read_credentials_file(path) == URL
    assert write_credentials_file(URL, tmp_path) != path  # a fresh random name each time


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o606])
def test_a_file_others_may_read_or_write_is_refused(tmp_path: Path, mode: int) -> None:
    path = write_credentials_file(URL, tmp_path)
    path.chmod(mode)
    fix = f"mode {mode:04o}.*chmod 600 {re.escape(str(path))}"
    with pytest.raises(CredentialsFileError, match=fix):
        read_credentials_file(path)


@pytest.mark.parametrize(("text", "why"), [
    ("not json", "not JSON"), ('["a"]', 'no "url"'), ('{"url": 3}', 'no "url"'),
    ('{"url": "  "}', 'no "url"')])
def test_a_file_that_is_no_credentials_file_says_so(tmp_path: Path, text: str, why: str) -> None:
    path = tmp_path / "c.json"
    path.write_text(text)
    path.chmod(0o600)
    with pytest.raises(CredentialsFileError, match=why) as caught:
        read_credentials_file(path)
    assert str(path) in str(caught.value)
    with pytest.raises(CredentialsFileError, match="cannot read"):
        read_credentials_file(tmp_path / "missing.json")


def test_a_handoff_of_a_url_writes_a_file_and_removes_it(tmp_path: Path) -> None:
    with Handoff(ServerRef(URL), tmp_path) as handoff:
        env = handoff.env
        assert list(env) == ["HQ_SWEEP_REDIS_URL_FILE"] and "s3cr3t" not in repr(env)
        path = Path(env["HQ_SWEEP_REDIS_URL_FILE"])
        assert path.is_absolute() and read_credentials_file(path) == URL
        assert handoff.env == env  # one file per handoff, however often asked
    assert not path.exists()


def test_a_handoff_of_a_connection_file_names_that_file(tmp_path: Path) -> None:
    ref = ServerRef(URL, tmp_path / "connection.json", "HQ_SWEEP_CONNECTION_FILE")
    handoff = Handoff(ref, tmp_path)
    assert handoff.env == {"HQ_SWEEP_CONNECTION_FILE": str(tmp_path / "connection.json")}
    handoff.close()
    assert not (tmp_path / "credentials").exists()  # nothing written, nothing removed


def test_children_lose_every_route_to_the_secret() -> None:
    env = {"PATH": "/bin", "HQ_SWEEP_RANK": "1", **{name: "x" for name in SERVER_VARS}}
    assert without_server_vars(env) == {"PATH": "/bin", "HQ_SWEEP_RANK": "1"}


def test_locate_reads_the_named_files_after_the_url_and_before_the_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connection, "server_alive", lambda info: True)
    recorded = ServerInfo(host="127.0.0.1", port=7000, password="from-state-dir", pid=os.getpid(),
                          state_dir=connection.default_state_dir())
    write_connection_file(recorded)
    assert resolve_redis_url() == recorded.url
    named = ServerInfo(host="127.0.0.1", port=7001, password="from-named", pid=os.getpid(),
                       state_dir=tmp_path / "named")
    named_path = write_connection_file(named)
    monkeypatch.setenv("HQ_SWEEP_CONNECTION_FILE", str(named_path))
    ref = locate_server()
    assert (ref.url, ref.file, ref.file_var) == (named.url, named_path,
                                                 "HQ_SWEEP_CONNECTION_FILE")
    credentials = write_credentials_file(URL, tmp_path)
    monkeypatch.setenv("HQ_SWEEP_REDIS_URL_FILE", str(credentials))
    ref = locate_server()
    assert (ref.url, ref.file, ref.file_var) == (URL, credentials, "HQ_SWEEP_REDIS_URL_FILE")
    assert ref.reread is not None and ref.reread() == URL
    credentials.write_text(json.dumps({"url": "redis://:new@10.0.0.2:7002/0"}))
    assert ref.reread() == "redis://:new@10.0.0.2:7002/0"  # what a moved server left there
    monkeypatch.setenv("HQ_SWEEP_REDIS_URL", "redis://:env@envhost:1/0")
    assert locate_server() == ServerRef("redis://:env@envhost:1/0")  # nothing to re-read
    assert locate_server("redis://:cli@clihost:2/0").url == "redis://:cli@clihost:2/0"


def test_a_named_connection_file_must_be_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HQ_SWEEP_CONNECTION_FILE", str(tmp_path / "other.json"))
    with pytest.raises(connection.ConnectionFileError, match=r"is not a connection\.json"):
        locate_server()
    monkeypatch.setenv("HQ_SWEEP_CONNECTION_FILE", str(tmp_path / "connection.json"))
    with pytest.raises(connection.ConnectionFileError, match="is gone"):
        locate_server()
