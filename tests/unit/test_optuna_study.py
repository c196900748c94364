"""Trial records -> an Optuna study (`results.optuna_study`), on hand-made records."""

from __future__ import annotations

import datetime
from pathlib import Path

import optuna
import pytest
from optuna.distributions import (
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
    distribution_to_json,
)
from optuna.trial import TrialState as OptunaState

from hq_sweep.controller.space import build_space
from hq_sweep.messages import TrialRecord, TrialState
from hq_sweep.results.optuna_study import (
    NUMBER_ATTR,
    REASON_ATTR,
    StudyExists,
    check_new_study,
    redacted,
    to_study,
)
from hq_sweep.spec.sweep import parse_spec

pytestmark = pytest.mark.timeout(30)

SPEC = parse_spec({
    "method": "random", "metric": {"name": "loss", "goal": "maximize"},
    "worker": {"module": "obj.py"},
    "parameters": {"lr": {"min": 0.001, "max": 0.1, "distribution": "log_uniform_values"},
                   "layers": {"values": [[1, 2], [3]]}, "fixed": {"value": 7}}})
DEPTH = distribution_to_json(IntDistribution(2, 8))
T0 = 1_700_000_000.0


def _record(number: int, state: TrialState, **fields: object) -> TrialRecord:
    params = {"lr": 0.01, "layers": [3], "fixed": 7, "depth": 4}
    base: dict[str, object] = {"attempt": 1, "params": params, "distributions": {"depth": DEPTH},
                               "worker": "w0", "started_at": T0, "ended_at": T0 + 5.0}
    return TrialRecord(number, state, **{**base, **fields})  # type: ignore[arg-type]


def _study(records: list[TrialRecord], intermediate: dict[int, dict[int, float]] | None = None,
           **kwargs: object) -> optuna.Study:
    return to_study(records, intermediate or {}, SPEC, build_space(SPEC), **kwargs)  # type: ignore[arg-type]


def test_finished_trials_read_as_optuna_keeps_them() -> None:
    records = [
        _record(0, TrialState.COMPLETE, values=[0.5], duration=2.0, metrics={"note": "a"}),
        _record(1, TrialState.PRUNED, values=[0.2], reason="pruned at step 3"),
        _record(2, TrialState.CANCELLED, reason="withdrawn"),
        _record(3, TrialState.FAILED, reason="ValueError: boom"),
        _record(4, TrialState.RUNNING),
        _record(5, TrialState.COMPLETE, values=[0.9]),
    ]
    study = _study(records, {1: {0: 0.1, 3: 0.3}})
    assert [t.state for t in study.trials] == [OptunaState.COMPLETE, OptunaState.PRUNED,
                                               OptunaState.FAIL, OptunaState.COMPLETE]
    assert [t.system_attrs[NUMBER_ATTR] for t in study.trials] == [0, 1, 3, 5]
    assert [t.number for t in study.trials] == [0, 1, 2, 3]
    first, pruned, failed, _ = study.trials
    assert first.params == {"lr": 0.01, "layers": 1, "depth": 4}  # latent: the list's index
    assert first.distributions == {"lr": FloatDistribution(0.001, 0.1, log=True),
                                   "layers": CategoricalDistribution([0, 1]),
                                   "depth": IntDistribution(2, 8)}
    assert first.user_attrs == {"note": "a"} and first.system_attrs["hq_sweep:worker"] == "w0"
    assert first.datetime_start == datetime.datetime.fromtimestamp(T0 + 3.0)  # end - duration
    assert first.datetime_complete == datetime.datetime.fromtimestamp(T0 + 5.0)
    assert pruned.value == 0.3 and pruned.intermediate_values == {0: 0.1, 3: 0.3}
    assert failed.value is None and failed.system_attrs[REASON_ATTR] == "ValueError: boom"
    assert study.best_value == 0.9 and study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.metric_names == ["loss"]


def test_a_record_whose_params_do_not_fit_becomes_a_failed_trial_without_params() -> None:
    study = _study([_record(0, TrialState.COMPLETE, values=[1.0],
                            params={"lr": 0.01, "layers": [3], "depth": 99})])
    (trial,) = study.trials
    assert trial.state is OptunaState.FAIL and trial.params == {}
    assert trial.system_attrs[REASON_ATTR].startswith("unreadable record:")


def test_a_storage_gets_a_new_study_and_refuses_a_taken_name(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    _study([_record(0, TrialState.COMPLETE, values=[1.0])], storage=storage, study_name="s")
    assert len(optuna.load_study(study_name="s", storage=storage).trials) == 1
    with pytest.raises(StudyExists, match="'s' already exists"):
        check_new_study(storage, "s")
    check_new_study(storage, "t")


def test_a_storage_url_is_printed_without_its_password() -> None:
    assert redacted("postgresql://me:secret@db/optuna") == "postgresql://me:***@db/optuna"
    assert redacted("sqlite:///study.db") == "sqlite:///study.db"
