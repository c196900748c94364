"""What W&B's agent hands a program, so an unchanged W&B script gets its trial offline.

Per trial, as wandb 0.31's agent does (`wandb_agent.py` `_command_run`, `config_util.
save_config_file_from_dict`): the parameters go to `$WANDB_DIR/wandb/sweep-<sweep>/config-<run>
.yaml` (`wandb_version: 1`, then `name: {value: X}`, nested groups as dict values) and
`WANDB_SWEEP_PARAM_PATH` names it, so `wandb.init()` loads them into `wandb.config` (sweep
values override `init(config=...)` and are locked, offline too); `WANDB_RUN_ID` is the trial's
id. hq-sweep adds what an offline cluster needs: `WANDB_MODE=offline` unless the user chose a
mode, and `WANDB_DIR` in the sweep's run directory, so the runs are left for `wandb sync`; and
`wandb_hook/` first on PYTHONPATH, whose sitecustomize passes every `run.log` row and summary
value on to the trial live (offline, wandb writes nothing a reader could follow).
`WANDB_SWEEP_ID` stays unset: `wandb sync` of a run whose sweep the server does not know fails
(wandb/wandb#8115).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

log = logging.getLogger("hq_sweep.worker")
# Holds only sitecustomize.py, which passes each `run.log` on to the trial (see its docstring).
HOOK_DIR = Path(__file__).with_name("wandb_hook")
RUNS_FOLDER = "hq-sweep-runs"  # beside the sweep file: <folder>/<sweep id>/wandb/...
_NOT_IN_RUN_IDS = re.compile(r"[:;,#?/'\s]")  # W&B refuses these in a run id


def params_file_text(params: Mapping[str, Any]) -> str:
    """The agent's config file for nested `params` (byte for byte what it writes)."""
    text = "wandb_version: 1"
    if params:  # wandb: an empty dict here would not parse
        body = yaml.safe_dump({k: {"value": v} for k, v in params.items()},
                              default_flow_style=False, allow_unicode=True, sort_keys=False)
        text += "\n\n" + body
    return text


@dataclass(frozen=True, slots=True)
class WandbContract:
    """The W&B environment of one sweep's command-mode trials."""

    sweep_id: str
    run_dir: Path  # WANDB_DIR, unless the user's environment sets one
    project: str | None = None
    entity: str | None = None

    @classmethod
    def for_sweep(cls, sweep_id: str, base_dir: Path, project: str | None,
                  entity: str | None) -> WandbContract:
        contract = cls(sweep_id, base_dir / RUNS_FOLDER / sweep_id, project, entity)
        if os.environ.get("WANDB_MODE", "").strip().lower() == "disabled":
            log.warning("WANDB_MODE=disabled: wandb.config still gets each trial's values, but "
                        "a script's wandb.config.update() of a sweep key raises there; unset it "
                        "to run offline (hq-sweep's default)")
        return contract

    def run_id(self, number: int) -> str:
        return _NOT_IN_RUN_IDS.sub("-", f"{self.sweep_id}-{number}")

    def prepare(self, number: int, params: Mapping[str, Any],
                env: MutableMapping[str, str]) -> None:
        """Write trial `number`'s params file and set the agent's variables in `env`."""
        wandb_dir = Path(env.get("WANDB_DIR") or self.run_dir)
        run_id = self.run_id(number)
        path = wandb_dir / "wandb" / f"sweep-{_NOT_IN_RUN_IDS.sub('-', self.sweep_id)}"
        path.mkdir(parents=True, exist_ok=True)
        param_path = path / f"config-{run_id}.yaml"
        param_path.write_text(params_file_text(params), encoding="utf-8")
        env["WANDB_DIR"] = str(wandb_dir)
        env["WANDB_SWEEP_PARAM_PATH"] = str(param_path)
        env["WANDB_RUN_ID"] = run_id
        env.setdefault("WANDB_MODE", "offline")  # compute nodes have no W&B server to reach
        python_path = env.get("PYTHONPATH")
        env["PYTHONPATH"] = str(HOOK_DIR) + (os.pathsep + python_path if python_path else "")
        for name, value in (("WANDB_PROJECT", self.project), ("WANDB_ENTITY", self.entity)):
            if value:
                env[name] = value
