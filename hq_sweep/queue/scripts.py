"""The Lua scripts in `lua/`, read once per process and run by their SHA.

Each script's header documents its KEYS, ARGV and every key it touches. Every script is sent
with `lua/_prelude.lua` before it (the helpers they share: counters that survive garbage). A
server that does not know a script yet (first call, or restarted) is sent its text once.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis

from hq_sweep.queue.client import ScriptMissing

NAMES = ("create_sweep", "enqueue", "claim", "finish", "report", "cancel", "lock_renew",
         "lock_release", "renew", "reap", "release", "stop_sweep", "suggest")


@dataclass(frozen=True, slots=True)
class LuaScript:
    name: str
    text: str
    sha: str

    def run(self, client: redis.Redis, keys: Sequence[str], args: Sequence[Any]) -> Any:
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except (ScriptMissing, redis.exceptions.NoScriptError):  # translated, or a raw client
            return client.eval(self.text, len(keys), *keys, *args)


@functools.cache
def script(name: str) -> LuaScript:
    """The script `lua/{name}.lua` (read from the package the first time it is asked for)."""
    if name not in NAMES:
        raise KeyError(f"no Lua script {name!r}")
    text = _prelude() + _read(f"{name}.lua")
    return LuaScript(name, text, hashlib.sha1(text.encode()).hexdigest())


@functools.cache
def _prelude() -> str:
    return _read("_prelude.lua")


def _read(file_name: str) -> str:
    return (resources.files("hq_sweep.queue") / "lua" / file_name).read_text()
