"""Reports during a Redis blip: kept and sent later, never a failed trial."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from hq_sweep.errors import RedisUnavailable
from hq_sweep.messages import Report
from hq_sweep.queue.reports import Verdicts
from hq_sweep.worker.reports import ReportBuffer

pytestmark = pytest.mark.timeout(10)


class FlakyChannel:
    """Refuses the first `failures` sends, then records what arrives."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.received: list[Report] = []

    def report_many(self, reports: Sequence[Report], feed_pruner: bool) -> Verdicts:
        if self.failures:
            self.failures -= 1
            raise RedisUnavailable("connection refused")
        self.received += reports
        return Verdicts({}, set())


def test_reports_survive_a_redis_blip_and_arrive_in_order() -> None:
    queue = FlakyChannel(failures=2)
    buffer = ReportBuffer(queue, feed_pruner=False)  # type: ignore[arg-type]
    buffer.interval_s = 0.0  # send on every report
    for step in range(4):
        assert buffer.add(Report(7, 1, step, float(step))) is None  # no exception reaches a trial
    assert [r.step for r in queue.received] == [0, 1, 2, 3]
    assert not buffer.unreachable


def test_the_final_flush_still_raises_so_the_worker_retries_it() -> None:
    queue = FlakyChannel(failures=1)
    buffer = ReportBuffer(queue, feed_pruner=False)  # type: ignore[arg-type]
    buffer.interval_s = float("inf")  # only explicit sends
    buffer.add(Report(7, 1, 0, 0.5))
    with pytest.raises(RedisUnavailable):
        buffer.send()
    buffer.send()
    assert [r.step for r in queue.received] == [0]
