"""Unchanged W&B training scripts under `hq-sweep run`, with the real wandb, offline.

The oracle is W&B itself: each trial's offline run directory holds the `.wandb` file in which
wandb-core recorded the run's history rows and summary (`wandb_records.read_run`); every value
the script logged must reach the trial record at W&B's step, and the trial's result must be
the run's summary value. Each test runs on the wandb installed with hq-sweep (`pip install
'hq-sweep[wandb]'`; CI installs it) and, where present, an older wandb line in its own venv
(`.venv-wandb-0.19`, made by `.ci/run`, or $HQ_SWEEP_TEST_OLD_WANDB_PYTHON); each skips
cleanly where its wandb is absent.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from hq_sweep.worker.wandb_contract import HOOK_DIR
from tests.integration.helpers import cli_env, finished_rows, hq, write_sweep
from tests.integration.wandb_records import WandbRun, read_run

pytest.importorskip("wandb")
pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
OLD_WANDB_PYTHON = Path(os.environ.get("HQ_SWEEP_TEST_OLD_WANDB_PYTHON")
                        or REPO / ".venv-wandb-0.19" / "bin" / "python")


def _wandb_version(python: str) -> str | None:
    try:
        done = subprocess.run([python, "-c", "import wandb; print(wandb.__version__)"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


@pytest.fixture(scope="module", params=["current", "old"])
def python(request: pytest.FixtureRequest) -> str:
    """The interpreter the trials' scripts run under, each with its own wandb."""
    exe = sys.executable if request.param == "current" else str(OLD_WANDB_PYTHON)
    if request.param == "old" and not OLD_WANDB_PYTHON.exists():
        pytest.skip(f"no older wandb venv at {OLD_WANDB_PYTHON} (.ci/run makes one)")
    if _wandb_version(exe) is None:
        pytest.skip(f"wandb does not import under {exe}")
    return exe


def run_sweep(tmp_path: Path, redis_url: str, script: str, body: dict[str, Any],
              python: str, workers: int = 2, **env: str) -> list[dict[str, Any]]:
    (tmp_path / "train.py").write_text(textwrap.dedent(script))
    sweep = write_sweep(tmp_path, {"program": "train.py", "project": "demo",
                                   "command": [python, "${program}", "${args}"], **body})
    cli = cli_env(redis_url, tmp_path, **env)
    cli.pop("WANDB_MODE", None)
    result = hq(["run", str(sweep), "--workers", str(workers), "--json"], cli, timeout=240)
    assert result.returncode == 0, result.stderr[-4000:]
    return finished_rows(redis_url, body["name"])


def wandb_run(tmp_path: Path, sweep: str, number: int) -> WandbRun:
    runs = list((tmp_path / "hq-sweep-runs" / sweep / "wandb").glob(
        f"offline-run-*-{sweep}-{number}"))
    assert len(runs) == 1, runs  # left for `wandb sync`
    return read_run(runs[0])


CONFIG_SCRIPT = """
    import wandb

    run = wandb.init(config={"lr": 1.0, "extra": 5})
    cfg = wandb.config
    loss = (cfg.lr - 0.1) ** 2 + cfg["model"]["depth"]
    wandb.config.update({"lr": 123.0})  # a sweep key is locked: ignored, as under W&B's agent
    wandb.log({"loss": loss, "lr_seen": wandb.config.lr, "depth_seen": cfg.model["depth"],
               "extra_seen": cfg.extra})
    run.finish()
"""


@pytest.mark.timeout(240)
def test_wandb_config_gets_each_trial_offline(redis_url: str, tmp_path: Path,
                                              python: str) -> None:
    rows = run_sweep(tmp_path, redis_url, CONFIG_SCRIPT, {
        "name": "wb", "method": "grid", "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"lr": {"values": [0.1, 0.2]},
                       "model": {"parameters": {"depth": {"values": [1, 2]}}}},
    }, python)
    assert [row["state"] for row in rows] == ["complete"] * 4
    for row in rows:
        params, metrics = row["params"], row["metrics"]
        assert metrics["lr_seen"] == params["lr"]  # the sweep's value won over init(config=)
        assert metrics["depth_seen"] == params["model.depth"]  # nested as W&B nests it
        assert metrics["extra_seen"] == 5  # the script's own config kept


# Unchanged W&B scripts, each a different way of logging. The sweep metric is `val_loss`.
SCRIPTS = {
    # wandb.log per epoch without step (W&B's counter), config by attribute, nested logged
    # dicts, an int and a bool; finish() called.
    "epochs": """
        import wandb

        run = wandb.init()
        cfg = wandb.config
        loss = 1.0 + cfg.quality
        for epoch in range(cfg.epochs):
            loss *= 0.8
            wandb.log({"val_loss": loss, "epoch": epoch, "train": {"loss": loss * 1.1},
                       "improved": True})
        run.finish()
    """,
    # explicit step= from 1, config by key, numpy scalars, no finish(): the last row is
    # completed at exit, as wandb does.
    "steps": """
        import numpy as np
        import wandb

        wandb.init()
        cfg = wandb.config
        for epoch in range(cfg["epochs"]):
            value = np.float64(cfg["quality"] + 1.0 / (epoch + 1))
            wandb.log({"val_loss": value, "lr": np.float32(0.5)}, step=epoch + 1)
            wandb.log({"val_acc": np.float32(1.0 - value / 4)}, step=epoch + 1)  # same row
        wandb.log({"val_loss": 99.0}, step=1)  # below the current step: W&B drops it
    """,
    # run.log with commit=False rows merged into the next commit, nested sweep params, and
    # run.summary set at the end: the result is the summary value, not the last one logged.
    "partial": """
        import wandb

        run = wandb.init(config={"batch": 32})
        best = float("inf")
        for epoch in range(run.config.epochs):
            run.log({"train_loss": 2.0 / (epoch + 1)}, commit=False)
            val = run.config.quality + 1.0 / (epoch + 1) + (0.5 if epoch == 3 else 0.0)
            best = min(best, val)
            run.log({"val_loss": val})
        run.summary["val_loss"] = best
        run.summary.update({"best_epoch": 1})
        run.finish()
    """,
}


@pytest.mark.parametrize("style", sorted(SCRIPTS))
@pytest.mark.timeout(240)
def test_every_logged_value_reaches_the_trial_as_wandb_recorded_it(
        redis_url: str, tmp_path: Path, python: str, style: str) -> None:
    rows = run_sweep(tmp_path, redis_url, SCRIPTS[style], {
        "name": style, "method": "grid", "metric": {"name": "val_loss", "goal": "minimize"},
        "parameters": {"quality": {"values": [0.0, 0.5]}, "epochs": {"value": 4}},
    }, python)
    assert [row["state"] for row in rows] == ["complete"] * 2
    for row in rows:
        recorded = wandb_run(tmp_path, style, row["number"])
        by_step = recorded.metric_by_step("val_loss")
        assert len(by_step) == 4, recorded.history
        # every value of the sweep metric, at W&B's step, in step order
        reported = {int(k): v for k, v in row["intermediate_values"].items()}
        assert reported == pytest.approx(by_step)
        assert list(reported) == sorted(reported)
        # every numeric summary value (W&B's last value, or what the script set) is a metric
        summary = recorded.numeric_summary()
        assert {k: row["metrics"].get(k) for k in summary} == pytest.approx(summary)
        assert row["values"] == pytest.approx([summary["val_loss"]])
        assert "improved" not in row["metrics"]  # booleans are not metrics
        if style == "partial":  # the summary won over the last logged value
            assert row["values"][0] == min(reported.values()) < reported[3]


EARLY_TERMINATE_SCRIPT = """
    import time
    import wandb

    run = wandb.init()
    for epoch in range(8):
        time.sleep(0.3)  # an epoch of training
        run.log({"val_loss": run.config.quality + 1.0 / (epoch + 1)})
    run.finish()
"""


@pytest.mark.timeout(240)
def test_early_terminate_stops_weak_runs_mid_training(redis_url: str, tmp_path: Path) -> None:
    """One worker, runs in order of worsening quality. W&B's rule (sweeps 0.3.0), eta 2,
    milestones 2, 4, 8: runs 0 and 1 are at or under the threshold of the runs that reached
    milestone 2; runs 2 and 3 are strictly above it, so W&B stops them there."""
    rows = run_sweep(tmp_path, redis_url, EARLY_TERMINATE_SCRIPT, {
        "name": "et", "method": "grid", "metric": {"name": "val_loss", "goal": "minimize"},
        "parameters": {"quality": {"values": [0.0, 0.5, 1.0, 1.5]}},
        "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 2},
    }, sys.executable, workers=1)
    assert [row["state"] for row in rows] == ["complete", "complete", "pruned", "pruned"]
    for row in rows[:2]:
        assert len(row["intermediate_values"]) == 8
    for row in rows[2:]:
        # stopped at milestone 2; the decision may land one epoch later, never at the end
        assert 2 <= len(row["intermediate_values"]) <= 3, row
        # killed there, not left to finish: shorter than any run that trained all 8 epochs
        assert row["duration"] < min(full["duration"] for full in rows[:2]), row


DDP_SCRIPT = """
    import os
    import subprocess
    import sys

    if "RANK" not in os.environ:  # the launcher, as torchrun would be
        ranks = [subprocess.Popen([sys.executable, __file__] + sys.argv[1:],
                                  env={**os.environ, "RANK": str(r)}) for r in (0, 1)]
        sys.exit(max(p.wait() for p in ranks))

    import wandb

    rank = int(os.environ["RANK"])
    run = wandb.init(id=f"{os.environ['WANDB_RUN_ID']}-rank{rank}")
    for epoch in range(3):
        run.log({"val_loss": 100.0 + epoch if rank else run.config.quality + epoch})
    run.finish()
"""


@pytest.mark.timeout(240)
def test_only_rank_zero_reports_in_a_multi_process_script(redis_url: str,
                                                          tmp_path: Path) -> None:
    rows = run_sweep(tmp_path, redis_url, DDP_SCRIPT, {
        "name": "ddp", "method": "grid", "metric": {"name": "val_loss", "goal": "minimize"},
        "parameters": {"quality": {"values": [0.25]}},
    }, sys.executable, workers=1)
    [row] = rows
    assert row["state"] == "complete"
    assert row["intermediate_values"] == {0: 0.25, 1: 1.25, 2: 2.25}
    assert row["values"] == [2.25]


PROBE = """
import json, os, sys
import wandb.sdk.wandb_run as wr
print(json.dumps({"bridged": getattr(wr.Run.log, "hq_sweep_bridge", False),
                  "shadowed_ran": os.environ.get("SHADOWED_SITECUSTOMIZE") == "ran"}))
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("in_a_trial", [False, True])
def test_the_hook_chain_loads_a_shadowed_sitecustomize_and_is_inert_outside_trials(
        tmp_path: Path, in_a_trial: bool) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import os\nos.environ['SHADOWED_SITECUSTOMIZE'] = 'ran'\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HQ_SWEEP_")}
    env["PYTHONPATH"] = os.pathsep.join([str(HOOK_DIR), str(site)])
    if in_a_trial:
        env["HQ_SWEEP_METRICS_FILE"] = str(tmp_path / "metrics.jsonl")
    done = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True,
                          text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"bridged": in_a_trial, "shadowed_ran": True}
