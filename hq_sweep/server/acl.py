"""The ACL user that sweeps log in as: only the commands hq-sweep and rq send, only their keys.

Servers that know ACLs (Valkey; Redis >= 6) get a user `hqsweep` beside the default user. The
default user keeps a separate admin secret (`requirepass`), used only for server questions
(`hq-sweep server stop/status`: INFO, SHUTDOWN); every client (CLI, controller, workers, rq)
logs in as `hqsweep`, which cannot reconfigure, flush, dump, watch or stop the server.

The allowlist was measured, not guessed: the integration tests that drive real sweeps (sweeps,
workers, queue, lifecycle, pruning, define-by-run, CLI) were run against a server and its
`INFO commandstats` read, then completed with what rq's code can send on paths those runs did
not take (failure handling, results streams, worker commands). Run the same tests with the
ACL in force (they do: every server hq-sweep starts has it) to check a change; a command
hq-sweep starts to send must be added here (the sweep user gets NOPERM for it otherwise,
and `tests/integration/test_server_access.py` reads the server's ACL LOG after a sweep).
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["CHANNEL_PATTERNS", "COMMANDS", "KEY_PATTERNS", "SWEEP_USER", "supports_acl",
           "user_directive"]

SWEEP_USER = "hqsweep"

# hq-sweep's keys (hq_sweep/queue/keys.py) and rq's (rq.defaults.RQ_KEY_PREFIX "rq").
KEY_PATTERNS = ("hqs:*", "rq:*")
# rq's worker command channel (rq.command.PUBSUB_CHANNEL_TEMPLATE).
CHANNEL_PATTERNS = ("rq:pubsub:*",)

_CONNECTION = ("auth", "hello", "ping", "client|setname", "client|setinfo", "client|info")
_SCRIPTS = ("eval", "evalsha", "script|load", "time")  # time: the Lua scripts' clock
_TRANSACTIONS = ("multi", "exec", "discard", "watch", "unwatch")
# incr: the quarantine's count; scan: `hq-sweep delete` walks one sweep's prefix.
_STRINGS_AND_KEYS = ("get", "set", "incr", "del", "unlink", "exists", "expire", "pexpire",
                     "persist", "rename", "scan")
_HASHES = ("hget", "hset", "hmget", "hgetall", "hdel", "hexists", "hincrby", "hincrbyfloat")
_LISTS = ("rpush", "lpush", "lpop", "lrange", "llen", "ltrim", "lrem", "lpos", "lmove",
          "blpop", "blmove")
_SETS = ("sadd", "srem", "smembers", "scard")
_SORTED_SETS = ("zadd", "zrem", "zrange", "zrangebyscore", "zremrangebyscore",
                "zremrangebyrank", "zscore", "zcard")
_STREAMS = ("xadd", "xread", "xrevrange", "xlen")  # rq keeps job results in streams
_PUBSUB = ("publish", "subscribe", "unsubscribe")  # rq's worker commands
# info: rq reads the server version (`INFO server`) once per connection.
_SERVER = ("info",)

COMMANDS: tuple[str, ...] = (
    _CONNECTION + _SCRIPTS + _TRANSACTIONS + _STRINGS_AND_KEYS + _HASHES + _LISTS + _SETS
    + _SORTED_SETS + _STREAMS + _PUBSUB + _SERVER
)

_VERSION = re.compile(r"\b(Redis|Valkey|KeyDB)\b.*?\bv=(\d+)\.(\d+)", re.IGNORECASE)
# Commands newer than Redis 6.0, the first Redis with ACLs (a user line naming a command
# the server does not know stops it from starting). Valkey has them all.
_REDIS_SINCE = {"client|setinfo": (7, 2), "client|info": (6, 2), "lmove": (6, 2),
                "blmove": (6, 2)}


def _version(version_line: str) -> tuple[str, tuple[int, int]] | None:
    found = _VERSION.search(version_line)
    if found is None:
        return None
    return found.group(1).lower(), (int(found.group(2)), int(found.group(3)))


def supports_acl(version_line: str) -> bool:
    """Whether a server whose `--version` printed `version_line` has ACL users: any Valkey,
    Redis from 6 on. Unrecognised output: no (requirepass alone works everywhere)."""
    known = _version(version_line)
    return known is not None and (known[0] == "valkey" or known[1] >= (6, 0))


def _commands_of(version_line: str) -> tuple[str, ...]:
    known = _version(version_line)
    if known is None or known[0] == "valkey":
        return COMMANDS
    return tuple(name for name in COMMANDS if _REDIS_SINCE.get(name, (0, 0)) <= known[1])


def user_directive(password: str, version_line: str = "") -> str:
    """The config file's `user` line for the sweep user, for the server whose `--version`
    said `version_line`. The password is stored as its SHA-256 (`#hex`), so the config file
    does not hold the clients' secret in clear."""
    digest = hashlib.sha256(password.encode()).hexdigest()
    keys = " ".join(f"~{pattern}" for pattern in KEY_PATTERNS)
    channels = " ".join(f"&{pattern}" for pattern in CHANNEL_PATTERNS)
    commands = " ".join(f"+{name}" for name in _commands_of(version_line))
    return f"user {SWEEP_USER} reset on #{digest} {keys} resetchannels {channels} -@all {commands}"
