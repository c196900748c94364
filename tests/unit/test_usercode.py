"""Result normalization, user-module loading and the Trial object (pure logic)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from optuna import TrialPruned

from hq_sweep.messages import Action, Decision
from hq_sweep.worker.trial import AttemptSuperseded, Trial, UndeclaredParameter
from hq_sweep.worker.usercode import (
    InvalidResult,
    UserCodeError,
    describe_exception,
    import_module,
    load_user_code,
    normalize_result,
)


def test_float_dict_and_sequence_results() -> None:
    assert normalize_result(0.5, ["acc"]) == ([0.5], {})
    assert normalize_result({"acc": 0.9, "loss": 0.1, "tag": "x"}, ["acc"]) == (
        [0.9], {"acc": 0.9, "loss": 0.1, "tag": "x"})
    assert normalize_result([1, 2.5], ["a", "b"]) == ([1.0, 2.5], {})
    assert normalize_result(3, []) == ([3.0], {})


@pytest.mark.parametrize("result, names, message", [
    (math.nan, ["acc"], "nan"),
    (math.inf, [], "inf"),
    ({"loss": 1.0}, ["acc"], "lacks the sweep metric 'acc'"),
    ([1.0, 2.0], ["acc"], "returned 2 values"),
    ("high", ["acc"], "not a number"),
    (None, ["acc"], "not a number"),
    (True, ["acc"], "not a number"),
])
def test_invalid_results(result: object, names: list[str], message: str) -> None:
    with pytest.raises(InvalidResult, match=message):
        normalize_result(result, names)


def test_load_user_code_by_path_and_errors(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text("def setup(ctx):\n    return 1\n"
                                      "def objective(trial, state):\n    return state\n")
    code = load_user_code("mine.py", "setup", "objective", [tmp_path])
    assert code.setup is not None and code.objective(None, code.setup(None)) == 1
    with pytest.raises(UserCodeError, match="has no callable 'missing'"):
        load_user_code("mine.py", "setup", "missing", [tmp_path])
    with pytest.raises(UserCodeError, match="not found"):
        load_user_code("absent.py", "setup", "objective", [tmp_path])
    (tmp_path / "broken.py").write_text("raise ImportError('no torch')\n")
    with pytest.raises(UserCodeError, match="no torch"):
        load_user_code("broken.py", "setup", "objective", [tmp_path])


def _trial(verdicts: list[int]) -> Trial:
    """A trial whose reports get these verdicts: 0 go on, 1 prune, -1 superseded."""

    def reporter(step: int, value: float) -> Decision | None:
        verdict = verdicts.pop(0)
        if verdict < 0:
            raise AttemptSuperseded("superseded")
        return Decision(step, Action.PRUNE) if verdict else None

    return Trial(4, 1, {"lr": 0.1, "model.depth": 3}, {"lr": 0.1, "model": {"depth": 3}},
                 reporter)


def test_trial_suggest_returns_assigned_values() -> None:
    trial = _trial([])
    assert trial.suggest_float("lr", 1e-5, 1.0, log=True) == 0.1
    assert trial.suggest_int("model.depth", 1, 8) == 3
    assert trial.suggest_int("depth", 1, 8) == 3  # a unique leaf name works too
    with pytest.raises(UndeclaredParameter, match="'momentum' is not declared"):
        trial.suggest_float("momentum", 0, 1)


def test_report_raises_pruned_on_the_controllers_decision() -> None:
    trial = _trial([0, 1])
    trial.report(0.5, 0)
    assert not trial.should_prune()
    with pytest.raises(TrialPruned):
        trial.report(0.4, 1)
    assert trial.should_prune() and trial.last_step == 1


def test_report_of_a_superseded_attempt_aborts() -> None:
    with pytest.raises(AttemptSuperseded):
        _trial([-1]).report(0.5, 0)


def test_describe_exception_names_the_users_line_not_library_frames(tmp_path: Path) -> None:
    user = tmp_path / "model.py"
    user.write_text("import json\n\ndef setup():\n    return json.loads('{bad')\n")
    module = import_module(str(user), [tmp_path])
    try:
        module.setup()
    except ValueError as exc:  # raised deep in the json package: the user's line is named
        described = describe_exception(exc)
    assert described.startswith("JSONDecodeError: Expecting property name")
    assert described.endswith("(model.py:4)")
    assert describe_exception(RuntimeError()) == "RuntimeError"
    assert len(describe_exception(ValueError("x" * 1000))) < 220
