"""The pure parts of stop/cancel/delete/list: wording, ages, states, key patterns."""

from __future__ import annotations

import io
import json

import fakeredis
import pytest
from rich.console import Console

from hq_sweep.cli.lifecycle import _describe, age, overview_json, overview_table
from hq_sweep.queue.client import Client
from hq_sweep.queue.lifecycle import (
    StopReport,
    SweepOverview,
    best_value,
    display_state,
    glob_escape,
    sweep_keys,
    user_stop,
)
from hq_sweep.queue.sweep import SweepQueue

pytestmark = pytest.mark.timeout(30)


def _client() -> Client:
    return Client(connection_pool=fakeredis.FakeRedis().connection_pool)


@pytest.mark.parametrize(("seconds", "text"), [
    (0, "0 s ago"), (59.9, "59 s ago"), (60, "1 min ago"), (3599, "59 min ago"),
    (7200, "2 h ago"), (86400 * 3 + 5, "3 d ago"), (-4, "0 s ago"),
])
def test_age_reads_as_people_say_it(seconds: float, text: str) -> None:
    assert age(seconds) == text


def test_a_finished_sweep_a_user_ended_says_how() -> None:
    assert display_state({"state": "finished", "stop": "stop"}) == "stopped"
    assert display_state({"state": "finished", "stop": "cancel"}) == "cancelled"
    assert display_state({"state": "finished"}) == "finished"
    assert display_state({"state": "stopping", "stop": "cancel"}) == "stopping"
    assert display_state({}) == "unknown"


def test_best_value_of_single_and_multi_objective_sweeps() -> None:
    assert best_value('{"number": 3, "value": 0.5, "params": {}}') == 0.5
    assert best_value('[{"number": 3, "values": [1, 2]}]') is None  # a front: see `best`
    assert best_value("") is None and best_value("not json") is None
    assert best_value('{"value": true}') is None


def test_glob_escape_matches_the_literal_alone() -> None:
    client = _client()
    for key in ("hqs:s:a*b:x", "hqs:s:aXb:x", "hqs:s:a[b]:x", "hqs:s:ab:x"):
        client.set(key, 1)
    assert [k.decode() for k in client.scan_iter(match=glob_escape("hqs:s:a*b:") + "*")] == [
        "hqs:s:a*b:x"]
    assert [k.decode() for k in client.scan_iter(match=glob_escape("hqs:s:a[b]:") + "*")] == [
        "hqs:s:a[b]:x"]


def test_sweep_keys_leave_a_sweep_whose_id_extends_this_ones() -> None:
    client = _client()
    for sweep in ("lc", "lc:x", "lc-2"):
        client.zadd("hqs:sweeps", {sweep: 1.0})
        client.hset(f"hqs:s:{sweep}", "state", "finished")
        client.hset(f"hqs:s:{sweep}:counts", "complete", 1)
        client.hset(f"hqs:s:{sweep}:t:0", "state", "complete")
    client.rpush("rq:queue:hqs-lc", "job1")
    client.hset("rq:job:job1", "origin", "hqs-lc")
    keys = sweep_keys(SweepQueue(client, "lc"))
    assert keys == ["hqs:s:lc", "hqs:s:lc:counts", "hqs:s:lc:t:0", "rq:job:job1",
                    "rq:queue:hqs-lc"]


def test_user_stop_reads_the_request() -> None:
    client = _client()
    queue = SweepQueue(client, "s")
    assert user_stop(queue) == "deleted"
    client.hset("hqs:s:s", "state", "running")
    assert user_stop(queue) is None
    client.hset("hqs:s:s", mapping={"state": "stopping", "stop": "cancel"})
    assert user_stop(queue) == "cancel"
    client.hset("hqs:s:s", "state", "finished")
    assert user_stop(queue) is None  # ended: a resumed sweep runs again


def _report(**changes: object) -> StopReport:
    fields: dict[str, object] = {"state": "stopping", "mode": "stop", "withdrawn": 3, "lost": 0,
                                 "flagged": 0, "running": 2, "controller": "node1 pid 7"}
    return StopReport(**{**fields, **changes})  # type: ignore[arg-type]


def test_stop_messages_say_what_happens_next() -> None:
    held = _describe("s", _report())
    assert "3 queued trial(s) withdrawn" in held and "2 running trial(s) finish first" in held
    assert "node1 pid 7" in held
    orphan = _describe("s", _report(mode="cancel", controller=None, lost=1))
    assert "being cancelled" in orphan and "No controller holds this sweep" in orphan
    assert "1 whose worker was lost cancelled" in orphan and "hq-sweep cancel s" in orphan
    assert _describe("s", _report(state="finished", running=0)).startswith("sweep s stopped")
    assert "already finished" in _describe("s", _report(state="finished", already_finished=True))


def test_list_table_and_json_shapes() -> None:
    row = SweepOverview("a" * 120, "cancelled", {"complete": 4, "cancelled": 2}, 0.25,
                        created=0.0, finished_reason="cancelled by user")
    out = io.StringIO()
    Console(file=out, soft_wrap=True, width=100_000, color_system=None).print(
        overview_table([row], now=7200.0))
    header, line = out.getvalue().splitlines()
    assert header.split()[0] == "sweep" and line.split() == [
        "a" * 120, "cancelled", "4", "0", "0", "0", "0.25", "2", "h", "ago"]
    record = overview_json(row)
    assert record["created"] == "1970-01-01T00:00:00.000000+00:00"
    assert record["trials"]["cancelled"] == 2 and record["best"] == 0.25
    json.dumps(record)
