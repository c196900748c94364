"""W&B's own account of an offline run, read from its `.wandb` file: the oracle for the tests.

The file is a LevelDB-style log of protobuf `Record`s (format: leveldb doc/log_format.md, with
W&B's 7-byte header `:W&B`, magic 0xBEE1, version 0). wandb >= 0.2x no longer ships a Python
reader, so this one is here; the records are parsed with the installed wandb's protobufs.
History records are the rows wandb-core completed (its step rules); summary records are
updates, folded here into the run's final summary.
"""

from __future__ import annotations

import importlib
import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _records(data: bytes) -> list[bytes]:
    assert data[:4] == b":W&B" and struct.unpack("<H", data[4:6])[0] == 0xBEE1, "not a .wandb"
    out: list[bytes] = []
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        checksum, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        chunk = data[pos + HEADER:pos + HEADER + length]
        if kind == 0 or len(chunk) < length:  # zero fill or a record still being written
            break
        assert checksum == zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF
        pos += HEADER + length
        if kind == FULL:
            out.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            out.append(pending + chunk)
    return out


def _key(item: Any) -> str:
    return item.key or ".".join(item.nested_key)


@dataclass
class WandbRun:
    history: list[dict[str, Any]] = field(default_factory=list)  # rows, user keys and _step
    summary: dict[str, Any] = field(default_factory=dict)

    def numeric_summary(self) -> dict[str, float]:
        return {k: v for k, v in self.summary.items() if not k.startswith("_")
                and isinstance(v, int | float) and not isinstance(v, bool)}

    def metric_by_step(self, name: str) -> dict[int, float]:
        return {row["_step"]: row[name] for row in self.history if name in row}


def read_run(run_dir: Path) -> WandbRun:
    pb: Any = importlib.import_module("wandb.proto.wandb_internal_pb2")  # no type stubs

    [path] = run_dir.glob("*.wandb")
    run = WandbRun()
    for raw in _records(path.read_bytes()):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            row = {_key(i): json.loads(i.value_json) for i in record.history.item}
            run.history.append({k: v for k, v in row.items()
                                if k == "_step" or not k.startswith("_")})
        elif kind == "summary":
            for item in record.summary.update:
                run.summary[_key(item)] = json.loads(item.value_json)
            for item in record.summary.remove:
                run.summary.pop(_key(item), None)
    return run
