"""The sweep user's rules and the connection file's access fields, as pure logic."""

from __future__ import annotations

from pathlib import Path

import pytest

from hq_sweep.server.acl import COMMANDS, SWEEP_USER, supports_acl, user_directive
from hq_sweep.server.info import ServerInfo

VALKEY = "Valkey server v=8.1.8 sha=00000000:1 malloc=libc bits=64 build=7eb4ebc9d7e91f4e"
REDIS_70 = "Redis server v=7.0.15 sha=00000000:0 malloc=jemalloc-5.3.0 bits=64 build=ae4d"


@pytest.mark.parametrize(("line", "expected"), [
    (VALKEY, True), (REDIS_70, True), ("Redis server v=6.0.9 sha=0", True),
    ("Redis server v=5.0.14 sha=0", False), ("", False), ("something else v=9.0", False),
])  # fmt: skip
def test_acl_support_is_read_from_the_version(line: str, expected: bool) -> None:
    assert supports_acl(line) is expected


def test_the_allowlist_leaves_out_every_administrative_command() -> None:
    forbidden = {"config", "debug", "module", "keys", "flushall", "flushdb", "shutdown",
                 "monitor", "save", "bgsave", "bgrewriteaof", "replicaof", "slaveof", "acl",
                 "script|flush", "client|kill", "client|list", "dump", "restore", "migrate",
                 "failover", "cluster", "sync", "psync", "swapdb", "select", "function"}
    assert not forbidden & set(COMMANDS)
    rule = user_directive("secret", VALKEY)
    assert rule.startswith(f"user {SWEEP_USER} reset on #") and "secret" not in rule
    assert " -@all " in rule and "~hqs:* ~rq:*" in rule and "&rq:pubsub:*" in rule
    assert "+client|setinfo" in rule


def test_commands_an_older_redis_does_not_know_are_left_out() -> None:
    older = user_directive("secret", REDIS_70)  # CLIENT SETINFO came with Redis 7.2
    assert "+client|setinfo" not in older and "+blmove" in older
    assert "+lmove" not in user_directive("s", "Redis server v=6.0.9 sha=0")


def _record(**extra: object) -> dict[str, object]:
    return {"host": "127.0.0.1", "port": 7000, "password": "pw", "pid": 1, "state_dir": "/s",
            "bind": "127.0.0.1", "node": "n", "started_at": "", **extra}


def test_a_record_from_before_acls_reads_as_the_default_user() -> None:
    old = ServerInfo.from_json(_record(url="redis://:pw@127.0.0.1:7000/0"))
    assert (old.user, old.admin_secret, old.tls) == ("", "pw", False)
    assert old.url == old.admin_url == "redis://:pw@127.0.0.1:7000/0"


def test_the_sweep_user_and_tls_in_urls_and_records() -> None:
    info = ServerInfo("h", 7000, "pw", 1, Path("/s"), user=SWEEP_USER, admin_password="adm",
                      tls=True, ca_file="/s/tls/ca.crt")
    assert info.url == "rediss://hqsweep:pw@h:7000/0?ssl_ca_certs=/s/tls/ca.crt"
    assert info.redacted_url == "rediss://hqsweep:***@h:7000/0?ssl_ca_certs=/s/tls/ca.crt"
    assert info.admin_url == "rediss://:adm@h:7000/0?ssl_ca_certs=/s/tls/ca.crt"
    assert "adm" not in repr(info) and "pw" not in repr(info)
    assert ServerInfo.from_json(info.to_json()) == info
    with pytest.raises(ValueError, match="'tls'"):
        ServerInfo.from_json(_record(tls="yes"))
