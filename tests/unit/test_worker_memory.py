"""Memory recycling cannot loop: a limit that setup() alone passes turns recycling off."""

from __future__ import annotations

import logging

import pytest

from hq_sweep.worker.lifecycle import memory_limit_after_setup
from hq_sweep.worker.warm_loop import WorkerOptions, rss_mb

pytestmark = pytest.mark.timeout(10)


def test_a_limit_below_what_setup_uses_turns_recycling_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        options = memory_limit_after_setup(WorkerOptions(max_rss_mb=1.0), "w0")
    assert options.max_rss_mb is None
    assert "raise max_worker_memory_mb" in caplog.text


def test_a_limit_with_headroom_is_kept() -> None:
    limit = rss_mb() + 10_000
    assert memory_limit_after_setup(WorkerOptions(max_rss_mb=limit), "w0").max_rss_mb == limit
    assert memory_limit_after_setup(WorkerOptions(), "w0").max_rss_mb is None
