"""An unchanged W&B training script under `hq-sweep run`, with the real wandb, offline.

Skipped where wandb is not installed (`pip install 'hq-sweep[wandb]'`; CI installs it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.integration.helpers import cli_env, finished_rows, hq, write_sweep

pytest.importorskip("wandb")
pytestmark = pytest.mark.integration

SCRIPT = '''
import json
import wandb

run = wandb.init(config={"lr": 1.0, "extra": 5})
cfg = wandb.config
loss = (cfg.lr - 0.1) ** 2 + cfg["model"]["depth"]
wandb.config.update({"lr": 123.0})  # a sweep key is locked: ignored, as under W&B's agent
seen = {"lr_seen": wandb.config.lr, "depth_seen": cfg.model["depth"], "extra_seen": cfg.extra}
print("@hq-sweep " + json.dumps({"loss": loss, **seen}), flush=True)
wandb.log({"loss": loss})
run.finish()
'''


@pytest.mark.timeout(180)
def test_wandb_config_gets_each_trial_offline(redis_url: str, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text(SCRIPT)
    spec = write_sweep(tmp_path, {
        "name": "wb", "program": "train.py", "method": "grid", "project": "demo",
        "metric": {"name": "loss", "goal": "minimize"},
        "parameters": {"lr": {"values": [0.1, 0.2]},
                       "model": {"parameters": {"depth": {"values": [1, 2]}}}},
    })
    env = cli_env(redis_url, tmp_path)
    env.pop("WANDB_MODE", None)
    result = hq(["run", str(spec), "--workers", "2", "--json"], env)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["trials"] == {"complete": 4, "pruned": 0, "failed": 0}
    for row in finished_rows(redis_url, "wb"):
        params, metrics = row["params"], row["metrics"]
        assert metrics["lr_seen"] == params["lr"]  # the sweep's value won over init(config=)
        assert metrics["depth_seen"] == params["model.depth"]  # nested as W&B nests it
        assert metrics["extra_seen"] == 5  # the script's own config kept
        runs = list((tmp_path / "hq-sweep-runs" / "wb" / "wandb").glob(
            f"offline-run-*-wb-{row['number']}"))
        assert len(runs) == 1 and list(runs[0].glob("*.wandb")), runs  # left for `wandb sync`
