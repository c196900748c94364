"""What a sweep cost so far, from the totals finish.lua keeps (O(1): no record is read)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hq_sweep.messages import TrialRecord
from hq_sweep.queue.sweep import SweepQueue

COST_COLUMNS = ("node", "gpu", "gpus", "gpu_hours", "rss_peak_mb", "gpu_mem_peak_mb")


def cost_totals(queue: SweepQueue) -> dict[str, float]:
    """trial_hours, gpu_hours, rss_peak_mb and gpu_mem_peak_mb (the largest of any trial;
    absent until a trial that measured it finished). Trials recorded before hq-sweep kept
    these totals are not in them."""
    raw = queue.meta.cost_totals()
    totals = {"trial_hours": raw.get("trial_s", 0.0) / 3600,
              "gpu_hours": raw.get("gpu_s", 0.0) / 3600}
    for name in ("rss_peak_mb", "gpu_mem_peak_mb"):
        if name in raw:
            totals[name] = raw[name]
    return totals


def _mb(value: float) -> str:
    return f"{value / 1024:.1f} GB" if value >= 1024 else f"{value:.0f} MB"


def cost_line(totals: Mapping[str, float]) -> str:
    """One line for `status` and the monitor: "cost: 1.8 GPU-h, 3.2 trial-h, peak RSS 2.1 GB"."""
    parts = [f"{totals.get('gpu_hours', 0.0):.2g} GPU-h" if totals.get("gpu_hours") else "",
             f"{totals.get('trial_hours', 0.0):.2g} trial-h"]
    if "rss_peak_mb" in totals:
        parts.append(f"peak RSS {_mb(totals['rss_peak_mb'])}")
    if "gpu_mem_peak_mb" in totals:
        parts.append(f"peak GPU memory {_mb(totals['gpu_mem_peak_mb'])}")
    return "cost: " + ", ".join(p for p in parts if p)


def cost_columns(record: TrialRecord, duration: float | None) -> dict[str, Any]:
    """A trial's cost as export shows it; all None for a record that holds none (written
    before hq-sweep measured it). gpu_hours: the run time x the worker's GPUs."""
    if not record.node:
        return dict.fromkeys(COST_COLUMNS)
    hours = None if duration is None else round(duration * record.gpus / 3600, 9)
    return {"node": record.node, "gpu": record.gpu or None, "gpus": record.gpus,
            "gpu_hours": hours, "rss_peak_mb": record.rss_peak_mb,
            "gpu_mem_peak_mb": record.gpu_mem_peak_mb}
