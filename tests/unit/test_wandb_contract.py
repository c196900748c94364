"""What a command-mode trial's program gets of W&B's agent contract (no wandb needed here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hq_sweep.worker.wandb_contract import WandbContract, params_file_text

pytestmark = pytest.mark.timeout(10)
PARAMS = {"lr": 0.01, "model": {"depth": 3, "act": "relu"}, "note": None, "on": True}


def test_the_params_file_is_what_the_agent_writes() -> None:
    assert params_file_text(PARAMS) == (
        "wandb_version: 1\n\nlr:\n  value: 0.01\nmodel:\n  value:\n    depth: 3\n"
        "    act: relu\nnote:\n  value: null\n'on':\n  value: true\n")  # YAML 1.1 quotes 'on'
    assert params_file_text({}) == "wandb_version: 1"


def test_the_params_file_matches_wandbs_own_writer(tmp_path: Path) -> None:
    config_util = pytest.importorskip("wandb.sdk.lib.config_util")
    theirs = tmp_path / "theirs.yaml"
    config_util.save_config_file_from_dict(str(theirs), {k: {"value": v}
                                                        for k, v in PARAMS.items()})
    assert theirs.read_text() == params_file_text(PARAMS)


def test_prepare_sets_the_agents_variables(tmp_path: Path) -> None:
    contract = WandbContract("my:sweep/1", tmp_path / "runs", project="proj", entity="team")
    env: dict[str, str] = {"WANDB_SWEEP_ID": "kept-as-the-user-set-it"}
    contract.prepare(7, PARAMS, env)
    assert env["WANDB_RUN_ID"] == "my-sweep-1-7"  # W&B refuses :;,#?/' in run ids
    assert env["WANDB_DIR"] == str(tmp_path / "runs")
    path = Path(env["WANDB_SWEEP_PARAM_PATH"])
    assert path == tmp_path / "runs" / "wandb" / "sweep-my-sweep-1" / "config-my-sweep-1-7.yaml"
    assert path.read_text() == params_file_text(PARAMS)
    assert (env["WANDB_MODE"], env["WANDB_PROJECT"], env["WANDB_ENTITY"]) == (
        "offline", "proj", "team")
    assert env["WANDB_SWEEP_ID"] == "kept-as-the-user-set-it"  # never set by hq-sweep


def test_a_mode_or_dir_the_user_chose_is_kept(tmp_path: Path) -> None:
    env = {"WANDB_MODE": "online", "WANDB_DIR": str(tmp_path / "mine")}
    WandbContract("s", tmp_path / "runs").prepare(0, {}, env)
    assert env["WANDB_MODE"] == "online" and env["WANDB_DIR"] == str(tmp_path / "mine")
    assert Path(env["WANDB_SWEEP_PARAM_PATH"]).parent.parent.parent == tmp_path / "mine"
    assert "WANDB_PROJECT" not in env


def test_disabled_mode_is_warned_about(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                       caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("WANDB_MODE", "disabled")
    WandbContract.for_sweep("s", tmp_path, None, None)
    assert "config.update() of a sweep key raises" in caplog.text
