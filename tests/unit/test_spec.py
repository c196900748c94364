"""Sweep-file parsing and validation (hq_sweep.spec.sweep): W&B's rules, Argo's additions,
hq-sweep's own keys, and path-precise error lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hq_sweep.spec.sweep import (
    DEFAULT_METRIC_NAME,
    Metric,
    ParamGroup,
    ParamSpec,
    SpecError,
    SweepSpec,
    load_spec,
    parse_spec,
)


def sweep(params: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"method": "random", "parameters": params, **top}


def errors_of(data: Any) -> list[str]:
    with pytest.raises(SpecError) as info:
        parse_spec(data)
    return info.value.errors


def param(spec: SweepSpec, name: str) -> ParamSpec:
    return spec.flat_parameters()[name]


# ---------------------------------------------------------------- distribution inference


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"values": [1, 2]}, "categorical"),
        ({"values": ["a", "b"], "probabilities": [0.3, 0.7]}, "categorical_w_probabilities"),
        ({"value": 3}, "constant"),
        ({"value": None}, "constant"),
        ({"min": 1, "max": 5}, "int_uniform"),
        ({"min": 0.0, "max": 1.0}, "uniform"),
        ({"min": 0, "max": 1.0}, "uniform"),  # W&B: any float bound -> uniform
        ({"min": 0.5, "max": 2}, "uniform"),
        ({"min": 0, "max": 1, "distribution": "uniform"}, "uniform"),
        ({"range": {"min": 1, "max": 4, "step": 1}}, "categorical"),
    ],
)
def test_distribution_inference(raw: dict[str, Any], expected: str) -> None:
    assert param(parse_spec(sweep({"x": raw})), "x").distribution == expected


DEFAULTS = [
    ({"distribution": "normal"}, {"mu": 0.0, "sigma": 1.0}),
    ({"distribution": "log_normal"}, {"mu": 0.0, "sigma": 1.0}),
    ({"distribution": "q_normal"}, {"mu": 0.0, "sigma": 1.0, "q": 1.0}),
    ({"distribution": "q_log_normal", "q": 2}, {"mu": 0.0, "sigma": 1.0, "q": 2}),
    ({"distribution": "beta"}, {"a": 1, "b": 1}),
    ({"distribution": "q_beta"}, {"a": 1, "b": 1, "q": 1.0}),
    ({"distribution": "q_uniform", "min": 0, "max": 10}, {"q": 1.0}),
    ({"distribution": "q_log_uniform_values", "min": 1, "max": 100}, {"q": 1.0}),
    ({"distribution": "q_log_uniform", "min": 0, "max": 3}, {"q": 1.0}),
]


@pytest.mark.parametrize(("raw", "filled"), DEFAULTS)
def test_defaults_are_filled(raw: dict[str, Any], filled: dict[str, Any]) -> None:
    p = param(parse_spec(sweep({"x": raw})), "x")
    assert {k: getattr(p, k) for k in filled} == filled


ALL_VALID = {
    "constant": {"value": "adam"},
    "categorical": {"values": [1, "two", [3], {"four": 4}]},
    "categorical_w_probabilities": {"values": [1, 2], "probabilities": [0.25, 0.75]},
    "int_uniform": {"distribution": "int_uniform", "min": -3, "max": 3},
    "uniform": {"distribution": "uniform", "min": -1.5, "max": 2.5},
    "log_uniform": {"distribution": "log_uniform", "min": -9.2, "max": -2.3},
    "log_uniform_values": {"distribution": "log_uniform_values", "min": 1e-4, "max": 0.1},
    "inv_log_uniform": {"distribution": "inv_log_uniform", "min": 1, "max": 3},
    "inv_log_uniform_values": {"distribution": "inv_log_uniform_values", "min": 0.01, "max": 1},
    "q_uniform": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.1},
    "q_log_uniform": {"distribution": "q_log_uniform", "min": 0, "max": 5, "q": 2},
    "q_log_uniform_values": {"distribution": "q_log_uniform_values", "min": 1, "max": 512, "q": 8},
    "normal": {"distribution": "normal", "mu": 3, "sigma": 0.5},
    "q_normal": {"distribution": "q_normal", "mu": 10, "sigma": 3, "q": 2},
    "log_normal": {"distribution": "log_normal", "mu": -1, "sigma": 0.3},
    "q_log_normal": {"distribution": "q_log_normal", "mu": 3, "sigma": 1, "q": 0.5},
    "beta": {"distribution": "beta", "a": 2, "b": 5},
    "q_beta": {"distribution": "q_beta", "a": 0.5, "b": 0.5, "q": 0.1},
}


def test_every_distribution_is_accepted() -> None:
    spec = parse_spec(sweep(ALL_VALID))
    assert {n: p.distribution for n, p in spec.flat_parameters().items()} == {
        n: n for n in ALL_VALID}


# ----------------------------------------------------------- per-distribution validation


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        ({"min": 0.1, "max": 0.01}, "parameters.x.max: must be greater than min (0.1)"),
        ({"min": 3, "max": 3}, "parameters.x.max: must be greater than min (3)"),
        ({"values": []}, "parameters.x.values: must list at least one value"),
        ({"values": "abc"}, "parameters.x.values: must be a list (got 'abc')"),
        ({"min": 1}, "parameters.x.max: required for int_uniform"),
        ({"max": 1.5}, "parameters.x.min: required for uniform"),
        ({"distribution": "uniform", "min": 0}, "parameters.x.max: required for uniform"),
        ({"distribution": "normal", "sigma": -1}, "parameters.x.sigma: must be at least 0"),
        ({"distribution": "q_normal", "q": 0}, "parameters.x.q: must be greater than 0"),
        ({"distribution": "beta", "a": -1}, "parameters.x.a: must be at least 0"),
        ({"distribution": "q_beta", "b": -0.1}, "parameters.x.b: must be at least 0"),
        ({"distribution": "log_uniform_values", "min": 0, "max": 1},
         "parameters.x.min: must be greater than 0 for log_uniform_values (got 0)"),
        ({"distribution": "inv_log_uniform_values", "min": -1, "max": 1},
         "parameters.x.min: must be greater than 0 for inv_log_uniform_values (got -1)"),
        ({"distribution": "q_log_uniform_values", "min": 0.0, "max": 1},
         "parameters.x.min: must be greater than 0 for q_log_uniform_values (got 0.0)"),
        ({"distribution": "log_uniform", "min": 1, "max": 1000},
         "parameters.x.max: is a natural-log exponent for log_uniform: at most 700 in size"),
        ({"distribution": "int_uniform", "min": 0, "max": 2.5},
         "parameters.x.max: must be an integer for int_uniform (got 2.5)"),
        ({"distribution": "gaussian"},
         "parameters.x.distribution: must be one of constant, categorical, "
         "categorical_w_probabilities, int_uniform, uniform, log_uniform, log_uniform_values, "
         "inv_log_uniform, inv_log_uniform_values, q_uniform, q_log_uniform, "
         "q_log_uniform_values, normal, q_normal, log_normal, q_log_normal, beta, q_beta "
         "(got 'gaussian')"),
        ({"min": "0", "max": 1}, "parameters.x.min: must be a number (got '0')"),
        ({"min": True, "max": 3}, "parameters.x.min: must be a number (got True)"),
        ({"values": [1, 2], "probabilities": [0.5]},
         "parameters.x.probabilities: has 1 entries, values has 2"),
        ({"values": [1, 2], "probabilities": [0.5, 0.6]},
         "parameters.x.probabilities: must sum to 1 (they sum to 1.1)"),
        ({"values": [1, 2], "probabilities": [1.5, -0.5]},
         "parameters.x.probabilities[1]: must be at least 0"),
        ({"distribution": "categorical", "values": [1], "probabilities": [1.0]},
         "parameters.x.probabilities: not allowed for categorical (it takes values); use "
         "distribution categorical_w_probabilities or leave distribution out"),
        ({"min": 1, "max": 10, "q": 2},
         "parameters.x.q: not allowed for int_uniform (it takes min, max); for steps use "
         "distribution q_uniform"),
        ({"values": [1], "value": 1},
         "parameters.x.value: not allowed for categorical (it takes values)"),
        ({"valeus": [1]}, "parameters.x.valeus: unknown key (did you mean 'values'?)"),
        ({"mu": 1}, "parameters.x.distribution: required with mu (one of normal, q_normal, "
                    "log_normal, q_log_normal)"),
        ({}, "parameters.x: needs values, value, min and max, range, or a distribution"),
        (0.1, "parameters.x: must be a mapping such as {values: [...]} or {min: 0, max: 1} "
              "(for a constant write {value: 0.1})"),
        ({"value": float("nan")},
         "parameters.x.value: must be JSON data (NaN and infinity are not)"),
        ({"min": 1e-5, "max": "1e-3"},
         "parameters.x.max: must be a number (got '1e-3'; YAML 1.1 reads a number like 1e-5 "
         "as text: write 1.0e-5)"),
    ],
)
def test_parameter_errors_name_their_path(raw: Any, line: str) -> None:
    assert errors_of(sweep({"x": raw})) == [line]


def test_int_uniform_with_float_bounds_reports_both() -> None:
    # wandb/sweeps tests_config/test_validation.py::test_minmax_type_inference: 2 violations
    raw = {"a": {"min": 0.0, "max": 1.0, "distribution": "int_uniform"}}
    assert len(errors_of(sweep(raw))) == 2


@pytest.mark.parametrize("name", ["1abc", "a b", "a/b", ""])
def test_parameter_names_follow_wandb_pattern(name: str) -> None:
    (line,) = errors_of(sweep({name: {"value": 1}}))
    where = f"parameters.{name}" if name else "parameters['']"  # an empty key, quoted
    assert line.startswith(f"{where}: invalid parameter name")


def test_allowed_parameter_names() -> None:
    spec = parse_spec(sweep({"_a": {"value": 1}, "b-c.d": {"value": 2}, "E9": {"value": 3}}))
    assert set(spec.flat_parameters()) == {"_a", "b-c.d", "E9"}


# ------------------------------------------------------------------ nested parameters


NESTED = sweep({
    "lr": {"min": 0.001, "max": 0.1},
    "model": {"parameters": {
        "depth": {"values": [2, 4]},
        "act": {"value": "relu"},
        "opt": {"parameters": {"name": {"values": ["adam", "sgd"]}}},
    }},
    "a_first": {"value": 0},
})


def test_nested_parameters_flatten_in_wandb_order() -> None:
    spec = parse_spec(NESTED)
    assert list(spec.flat_parameters()) == [
        "a_first", "lr", "model.act", "model.depth", "model.opt.name"]
    assert spec.parameter_paths()["model.opt.name"] == ("model", "opt", "name")
    assert isinstance(spec.parameters["model"], ParamGroup)


def test_nested_errors_have_full_paths() -> None:
    data = sweep({"model": {"parameters": {
        "depth": {"values": []},
        "inner": {"parameters": {"w": {"min": 2, "max": 1}}},
        "bad": {"parameters": {}},
    }, "values": [1]}})
    assert set(errors_of(data)) == {
        "parameters.model.values: not allowed next to parameters",
        "parameters.model.parameters.depth.values: must list at least one value",
        "parameters.model.parameters.inner.parameters.w.max: must be greater than min (2)",
        "parameters.model.parameters.bad.parameters: must declare at least one parameter",
    }


def test_dotted_name_colliding_with_nested_one_is_refused() -> None:
    data = sweep({"model.depth": {"value": 1}, "model": {"parameters": {"depth": {"value": 2}}}})
    (line,) = errors_of(data)
    assert line == ("parameters.model.depth: its flat name 'model.depth' is also "
                    "parameters.model.parameters.depth")


# ----------------------------------------------------------------------------- W&B rules


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ({"parameters": {"a": {"values": [1]}}}, "method: required"),
        ({"method": "random"}, "parameters: required"),
        (sweep({}), "parameters: must declare at least one parameter"),
        ({"method": "foo", "parameters": {"a": {"value": 1}}},
         "method: must be one of grid, random, bayes (got 'foo')"),
        ({"method": "custom", "parameters": {"a": {"value": 1}}},
         "method: 'custom' needs a W&B scheduler engine, which hq-sweep does not run: use grid, "
         "random or bayes (and sampler: for another Optuna sampler)"),
        ({"method": "bayes", "parameters": {"a": {"min": 0.0, "max": 1.0}}},
         "metric: required for method bayes: Bayesian search needs a metric"),
        ({"method": "bayes", "metric": {"name": "l"}, "parameters": {"a": {"value": 1}}},
         "parameters: method bayes needs at least one non-constant parameter"),
        ({"method": "grid", "parameters": {"a": {"min": 0.0, "max": 1.0}}},
         "parameters.a: uniform cannot be enumerated by method grid: use values, value, "
         "int_uniform, q_uniform or range"),
        ({"method": "grid", "parameters": {"a": {"values": [1, 2], "probabilities": [.5, .5]}}},
         "parameters.a.probabilities: not allowed with method grid (W&B refuses them)"),
        (sweep({"a": {"value": 1}}, metric={"name": "l", "goal": "minimise"}),
         "metric.goal: must be one of minimize, maximize (got 'minimise') "
         "(did you mean 'minimize'?)"),
        (sweep({"a": {"value": 1}}, metric={"goal": "maximize"}), "metric.name: required"),
        (sweep({"a": {"value": 1}}, metric={"name": "l", "mode": "max"}),
         "metric.mode: unknown key"),
        (sweep({"a": {"value": 1}}, metric="val_loss"),
         "metric: must be a mapping (got 'val_loss')"),
        (sweep({"a": {"value": 1}}, metric={"name": "l", "impute": "mean"}),
         "metric.impute: must be one of latest, best, worst (got 'mean')"),
        (sweep({"a": {"value": 1}}, run_cap=0), "run_cap: must be at least 1 (got 0)"),
        (sweep({"a": {"value": 1}}, run_cap="5"), "run_cap: must be an integer (got '5')"),
        (sweep({"a": {"value": 1}}, name=3), "name: must be a string (got 3)"),
        (sweep({"a": {"value": 1}}, name=None), "name: must not be empty (null)"),
        (sweep({"a": {"value": 1}}, command="python x.py"),
         "command: must be a list of strings (got 'python x.py')"),
        (sweep({"a": {"value": 1}}, kind="job"), "kind: must be one of sweep (got 'job')"),
        (sweep({"a": {"value": 1}}, controller={"type": "remote"}),
         "controller.type: must be one of local, cloud (got 'remote')"),
        (sweep({"a": {"value": 1}}, metrc={"name": "l"}),
         "metrc: unknown key (did you mean 'metric'?)"),
        (sweep({"a": {"value": 1}}, scheduler={"engine": "optuna"}),
         "scheduler.engine: 'optuna' schedulers are not run by hq-sweep: choose an Optuna "
         "sampler with sampler: instead"),
    ],
)
def test_wandb_rules(data: dict[str, Any], line: str) -> None:
    assert errors_of(data) == [line]


@pytest.mark.parametrize(
    ("et", "line"),
    [
        ({"type": "hyperband", "max_iter": 27}, "early_terminate.s: required with max_iter"),
        ({"type": "hyperband"}, "early_terminate: needs min_iter, or max_iter and s"),
        ({"type": "hyperband", "min_iter": 0},
         "early_terminate.min_iter: must be at least 1 (got 0)"),
        ({"type": "hyperband", "min_iter": 3, "eta": 1},
         "early_terminate.eta: must be greater than 1 (got 1)"),
        ({"type": "median", "min_iter": 3},
         "early_terminate.type: must be one of hyperband (got 'median')"),
        ({"type": "hyperband", "min_iter": 3, "bands": 1}, "early_terminate.bands: unknown key"),
        ({"type": "hyperband", "max_iter": 2, "s": 2},
         "early_terminate: max_iter 2, eta 3 and s 2 give no milestone >= 1"),
        ({"type": "hyperband", "max_iter": 27, "s": 1.5},
         "early_terminate.s: must be a whole number (got 1.5)"),
    ],
)
def test_early_terminate_rules(et: dict[str, Any], line: str) -> None:
    assert errors_of(sweep({"a": {"value": 1}}, metric={"name": "l"}, early_terminate=et)) == [line]


def test_early_terminate_needs_metric_and_fills_defaults() -> None:
    et = {"type": "hyperband", "min_iter": 3}
    assert errors_of(sweep({"a": {"value": 1}}, early_terminate=et)) == [
        "early_terminate: needs metric: W&B's hyperband rule ranks runs by metric.name"]
    spec = parse_spec(sweep({"a": {"value": 1}}, metric={"name": "l"}, early_terminate=et))
    assert spec.early_terminate is not None
    assert (spec.early_terminate.eta, spec.early_terminate.strict) == (3, True)
    assert spec.early_terminate.milestones()[:4] == [3, 9, 27, 81]


def test_hyperband_milestones_from_max_iter() -> None:
    et = {"type": "hyperband", "max_iter": 27, "s": 3, "eta": 3}
    spec = parse_spec(sweep({"a": {"value": 1}}, metric={"name": "l"}, early_terminate=et))
    assert spec.early_terminate is not None
    assert spec.early_terminate.milestones() == [1, 3, 9]


def test_json_schema_integers_accept_integral_floats() -> None:
    spec = parse_spec(sweep({"a": {"value": 1}}, run_cap=5.0))
    assert spec.run_cap == 5 and isinstance(spec.run_cap, int)


def test_non_string_command_items_become_str_as_wandbs_agent_writes_them() -> None:
    spec = parse_spec(sweep({"a": {"value": 1}}, program="t.py",
                            command=["${program}", True, 42, 1.5, 1e-05]))
    assert spec.command == ["${program}", "True", "42", "1.5", "1e-05"]


def test_accepts_wandb_metadata_keys() -> None:
    data = sweep({"a": {"value": 1}}, apiVersion="v1", kind="sweep", controller={"type": "cloud"},
                 program="train.py", command=["${env}", "${interpreter}", "${program}", 3],
                 entity="me", project="p", description="d", job="j", image_uri="img",
                 scheduler={"engine": "wandb"})
    spec = parse_spec(data)
    assert spec.command == ["${env}", "${interpreter}", "${program}", "3"]
    assert spec.api_version == "v1" and spec.to_json_dict()["apiVersion"] == "v1"


def test_all_errors_are_collected() -> None:
    data = {
        "method": "bayes",
        "parameters": {
            "lr": {"min": 0.1, "max": 0.01},
            "opt": {"values": []},
            "layers": {"min": 1, "max": 4},
        },
        "metric": {"name": "loss", "goal": "up"},
        "run_cap": -1,
        "sampler": "nope",
        "bogus": True,
        "priors": [{"layers": 9}],
    }
    assert set(errors_of(data)) == {
        "parameters.lr.max: must be greater than min (0.1)",
        "parameters.opt.values: must list at least one value",
        "metric.goal: must be one of minimize, maximize (got 'up')",
        "run_cap: must be at least 1 (got -1)",
        "sampler.name: must be one of random, grid, tpe, gp, cmaes, qmc, nsgaii, bruteforce "
        "(got 'nope')",
        "bogus: unknown key",
        "priors[0].layers: 9 is outside [1, 4]",
    }


def test_cross_rules_still_run_when_fields_are_broken() -> None:
    data = {"method": "grid", "parameters": {"a": {"min": 0.0, "max": 1.0}, "b": {"values": []}},
            "run_cap": 0}
    assert set(errors_of(data)) == {
        "parameters.b.values: must list at least one value",
        "run_cap: must be at least 1 (got 0)",
        "parameters.a: uniform cannot be enumerated by method grid: use values, value, "
        "int_uniform, q_uniform or range",
    }


def test_messages_are_single_lines_without_urls() -> None:
    data = {"method": 1, "parameters": [1], "metric": {"name": 1}, "retries": "x", "worker": 3,
            "sampler": {"name": "tpe", "options": [1]}, "pruner": 5, "seed": 1.5}
    lines = errors_of(data)
    assert len(lines) >= 8
    for line in lines:
        assert "\n" not in line and "http" not in line and "pydantic" not in line.lower()
        assert ": " in line


def test_grid_accepts_int_uniform_and_q_uniform() -> None:
    spec = parse_spec({"method": "grid", "parameters": {
        "a": {"min": 1, "max": 3}, "b": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.5},
        "c": {"value": 1}, "d": {"values": [1, 2]}}})
    assert spec.is_grid and spec.sampler_name == "grid"


# ---------------------------------------------------------------------------- Argo


def test_argo_range_without_float_drift() -> None:
    spec = parse_spec(sweep({"lr": {"range": {"min": 0.1, "max": 0.5, "step": 0.1}}}))
    assert param(spec, "lr").values == [0.1, 0.2, 0.3, 0.4]


def test_argo_range_of_ints_and_appended_values() -> None:
    spec = parse_spec(sweep({"n": {"range": {"min": 0, "max": 10, "step": 3}, "values": [100]}}))
    values = param(spec, "n").values
    assert values == [0, 3, 6, 9, 100] and all(type(v) is int for v in values or [])


def test_argo_hyperparams_and_algorithm_aliases() -> None:
    data = {"algorithm": "grid", "parallelism": 3, "hyperparams": {
        "learning-rate": {"range": {"min": 0.1, "max": 0.5, "step": 0.1}},
        "model": {"values": ["RandomForest", "SVM", "LogisticRegression"]}}}
    spec = parse_spec(data)
    assert spec.method == "grid" and spec.parallelism == 3
    assert set(spec.flat_parameters()) == {"learning-rate", "model"}
    assert "hyperparams" not in spec.to_json_dict()


def test_argo_algorithm_names() -> None:
    spec = parse_spec({"algorithm": "tpe", "metric": {"name": "l"},
                       "hyperparams": {"x": {"min": 0.0, "max": 1.0}}})
    assert spec.method == "bayes" and spec.sampler_name == "tpe"
    assert parse_spec({"algorithm": "bayesian", "metric": {"name": "l"},
                       "hyperparams": {"x": {"min": 0.0, "max": 1.0}}}).method == "bayes"


@pytest.mark.parametrize(
    ("data", "line"),
    [
        ({"algorithm": "grid", "hyperparams": {"lr": {"range": {"min": 1, "max": 2, "step": 0}}}},
         "hyperparams.lr.range.step: must be greater than 0"),
        ({"algorithm": "grid", "hyperparams": {"lr": {"range": {"min": 2, "max": 1, "step": 1}}}},
         "hyperparams.lr.range.max: must be greater than min (2); max is excluded"),
        ({"algorithm": "grid", "hyperparams": {"lr": {"range": {"min": 0, "max": 1}}}},
         "hyperparams.lr.range.step: required"),
        ({"algorithm": "grid", "hyperparams": {"lr": {"range": {"min": 0, "max": 1e9, "step": 1}}}},
         "hyperparams.lr.range: yields more than 100000 values"),
        ({"algorithm": "hyperopt", "hyperparams": {"a": {"value": 1}}},
         "algorithm: must be one of grid, random, bayes (got 'hyperopt')"),
        ({"algorithm": "grid", "method": "grid", "parameters": {"a": {"value": 1}}},
         "algorithm: is another name for method: give only one of them"),
    ],
)
def test_argo_errors_use_the_keys_as_written(data: dict[str, Any], line: str) -> None:
    assert errors_of(data) == [line]


# ------------------------------------------------------------------------- hq-sweep keys


def test_hq_sweep_defaults() -> None:
    spec = parse_spec(sweep({"a": {"value": 1}}))
    assert (spec.retries, spec.trial_timeout, spec.parallelism, spec.seed) == (2, None, None, None)
    assert spec.priors == [] and spec.worker is None and spec.sampler is None


@pytest.mark.parametrize(
    ("given", "module", "setup", "objective"),
    [
        ("workers/digits.py", "workers/digits.py", "setup", "objective"),
        ("pkg.module", "pkg.module", "setup", "objective"),
        ("pkg.module:train", "pkg.module", "setup", "train"),
        ({"module": "m", "setup": "init", "objective": "run"}, "m", "init", "run"),
    ],
)
def test_worker_forms(given: Any, module: str, setup: str, objective: str) -> None:
    spec = parse_spec(sweep({"a": {"value": 1}}, worker=given))
    assert spec.worker is not None
    assert (spec.worker.module, spec.worker.setup, spec.worker.objective) == (
        module, setup, objective)


@pytest.mark.parametrize(
    ("top", "line"),
    [
        ({"worker": {"module": "m", "setup": "not valid"}},
         "worker.setup: must be a Python function name (got 'not valid')"),
        ({"worker": {"objective": "f"}}, "worker.module: required"),
        ({"worker": {"module": "m", "presample": "sometimes"}},
         "worker.presample: must be one of auto, always, never (got 'sometimes')"),
        ({"retries": -1}, "retries: must be at least 0 (got -1)"),
        ({"trial_timeout": 0}, "trial_timeout: must be greater than 0 (got 0)"),
        ({"parallelism": 0}, "parallelism: must be at least 1 (got 0)"),
        ({"seed": "x"}, "seed: must be an integer (got 'x')"),
        ({"pruner": {"name": "median", "opts": {}}},
         "pruner.opts: unknown key (did you mean 'options'?)"),
        ({"pruner": "earlystop"}, "pruner.name: must be one of median, percentile, "
                                  "successive_halving, hyperband, threshold, patient, wilcoxon, "
                                  "nop (got 'earlystop')"),
        ({"sampler": {"name": "tpe", "options": {"seed": 3}}},
         "sampler.options.seed: set sampler.seed (or seed) instead"),
        ({"metric": {"name": "a"}, "metrics": [{"name": "a"}, {"name": "b"}]},
         "metrics: cannot be combined with metric: use metric for one objective, metrics for "
         "several"),
        ({"metrics": [{"name": "a"}, {"name": "a", "goal": "maximize"}]},
         "metrics[1].name: duplicate metric name 'a'"),
        ({"metrics": [{"name": "a"}, {"name": "b"}], "pruner": "median"},
         "pruner: Optuna cannot prune a multi-objective study: drop pruner or metrics"),
        ({"metrics": [{"name": "a"}, {"name": "b"}], "sampler": "cmaes"},
         "sampler.name: cmaes optimizes a single objective, metrics lists 2"),
        ({"metric": {"name": "a"}, "pruner": "median",
          "early_terminate": {"type": "hyperband", "min_iter": 1}},
         "pruner: cannot be combined with early_terminate: choose one way to stop trials early"),
    ],
)
def test_hq_sweep_key_errors(top: dict[str, Any], line: str) -> None:
    assert errors_of(sweep({"a": {"min": 0.0, "max": 1.0}}, **top)) == [line]


@pytest.mark.parametrize(
    ("given", "name"),
    [("TPESampler", "tpe"), ("tpe", "tpe"), ("CmaEsSampler", "cmaes"), ("NSGA-II", "nsgaii"),
     ("nsga2", "nsgaii"), ("BruteForce", "bruteforce"), ("QMCSampler", "qmc"), ("GP", "gp")],
)
def test_sampler_names_and_aliases(given: str, name: str) -> None:
    spec = parse_spec(sweep({"a": {"values": [1, 2]}}, sampler=given))
    assert spec.sampler is not None and spec.sampler.name == name


@pytest.mark.parametrize(
    ("given", "name"),
    [("asha", "successive_halving"), ("SuccessiveHalvingPruner", "successive_halving"),
     ("MedianPruner", "median"), ("none", "nop"), ("hyperband", "hyperband")],
)
def test_pruner_names_and_aliases(given: str, name: str) -> None:
    spec = parse_spec(sweep({"a": {"values": [1, 2]}}, pruner=given))
    assert spec.pruner is not None and spec.pruner.name == name


@pytest.mark.parametrize(("method", "sampler"), [("random", "random"), ("grid", "grid"),
                                                 ("bayes", "tpe")])
def test_default_sampler_follows_method(method: str, sampler: str) -> None:
    data = {"method": method, "metric": {"name": "l"}, "parameters": {"a": {"values": [1, 2]}}}
    assert parse_spec(data).sampler_name == sampler


def test_method_grid_and_other_sampler_disagree() -> None:
    data = {"method": "grid", "sampler": "tpe", "parameters": {"a": {"values": [1, 2]}}}
    assert errors_of(data) == [
        "sampler.name: method grid walks its own grid: use sampler grid or leave sampler out "
        "(got 'tpe')"]


def test_sampler_grid_and_bruteforce_need_finite_spaces() -> None:
    params = {"a": {"min": 0.0, "max": 1.0}}
    assert errors_of(sweep(params, sampler="grid")) == [
        "parameters.a: uniform cannot be enumerated by sampler grid: use values, value, "
        "int_uniform, q_uniform or range"]
    assert errors_of(sweep(params, sampler="bruteforce"))[0].startswith(
        "parameters.a: uniform cannot be enumerated by sampler bruteforce")
    assert parse_spec(sweep({"a": {"values": [1, 2]}}, sampler="grid")).is_grid


# ------------------------------------------------------------------------- objectives


def test_objectives() -> None:
    plain = parse_spec(sweep({"a": {"value": 1}}))
    assert plain.objectives() == [Metric(name=DEFAULT_METRIC_NAME, goal="minimize")]
    single = parse_spec(sweep({"a": {"value": 1}}, metric={"name": "acc", "goal": "maximize"}))
    assert [(m.name, m.maximize) for m in single.objectives()] == [("acc", True)]
    multi = parse_spec(sweep({"a": {"value": 1}},
                             metrics=[{"name": "acc", "goal": "maximize"}, {"name": "time"}]))
    assert [(m.name, m.goal) for m in multi.objectives()] == [
        ("acc", "maximize"), ("time", "minimize")]


# ----------------------------------------------------------------------------- priors

PRIOR_PARAMS = {
    "lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 0.1},
    "layers": {"min": 1, "max": 4},
    "act": {"value": "relu"},
    "model": {"parameters": {"name": {"values": ["cnn", {"kind": "mlp"}]}}},
}


def test_priors_nested_or_dotted_are_flattened() -> None:
    priors = [{"lr": 0.01, "model": {"name": {"kind": "mlp"}}}, {"model.name": "cnn", "layers": 2}]
    spec = parse_spec(sweep(PRIOR_PARAMS, priors=priors))
    assert spec.flat_priors() == [{"lr": 0.01, "model.name": {"kind": "mlp"}},
                                  {"model.name": "cnn", "layers": 2}]


def test_prior_errors_name_their_path() -> None:
    priors = [{"lr": 0.5, "layers": 2.5, "act": "tanh"},
              {"model": {"name": "rnn"}, "depth": 3, "model.nme": 1},
              {"model": "cnn"}, "not a mapping"]
    assert set(errors_of(sweep(PRIOR_PARAMS, priors=priors))) == {
        "priors[0].lr: 0.5 is outside [0.0001, 0.1]",
        "priors[0].layers: must be an integer (got 2.5)",
        "priors[0].act: must equal the constant 'relu'",
        "priors[1].model.name: must be one of the values ['cnn', {'kind': 'mlp'}] (got 'rnn')",
        "priors[1].depth: not a declared parameter",
        "priors[1].model.nme: not a declared parameter (did you mean 'model.name'?)",
        "priors[2].model: must be a mapping of this group's parameters",
        "priors[3]: must be a mapping of parameter names to values (got 'not a mapping')",
    }


@pytest.mark.parametrize(
    ("raw", "good", "bad"),
    [
        ({"distribution": "log_uniform", "min": 0, "max": 1}, 2.0, 3.0),
        ({"distribution": "inv_log_uniform", "min": 0, "max": 1}, 0.5, 2.0),
        ({"distribution": "beta"}, 0.3, 1.2),
        ({"distribution": "log_normal"}, 12.0, -1.0),
        ({"distribution": "normal"}, -1e6, "x"),
        ({"distribution": "q_uniform", "min": 0, "max": 11, "q": 4}, 12, 13),
        ({"values": [1, 2.5]}, 1.0, 3),
    ],
)
def test_prior_domains(raw: dict[str, Any], good: Any, bad: Any) -> None:
    parse_spec(sweep({"x": raw}, priors=[{"x": good}]))
    (line,) = errors_of(sweep({"x": raw}, priors=[{"x": bad}]))
    assert line.startswith("priors[0].x: ")


# ------------------------------------------------------------- normalization and hashing

RICH = {
    "name": "rich", "method": "bayes", "metric": {"name": "loss", "target": 0.1},
    "early_terminate": {"type": "hyperband", "min_iter": 2},
    "parameters": {**ALL_VALID, "nest": {"parameters": {"r": {"range": {"min": 0.1, "max": 0.3,
                                                                         "step": 0.1}}}}},
    "worker": "pkg.mod:run",
    "sampler": {"name": "tpe", "seed": 3, "options": {"n_startup_trials": 5}},
    "retries": 0, "trial_timeout": 30, "parallelism": 4, "seed": 7,
    "priors": [{"int_uniform": 2, "nest": {"r": 0.2}}], "command": ["python", "x.py"],
}


def test_to_json_dict_round_trips_and_is_json() -> None:
    spec = parse_spec(RICH)
    data = spec.to_json_dict()
    again = parse_spec(json.loads(json.dumps(data)))
    assert again == spec and again.to_json_dict() == data
    assert data["parameters"]["nest"] == {
        "parameters": {"r": {"distribution": "categorical", "values": [0.1, 0.2]}}}
    assert data["worker"] == {"module": "pkg.mod", "setup": "setup", "objective": "run",
                              "presample": "auto"}
    assert data["metric"]["goal"] == "minimize" and data["early_terminate"]["eta"] == 3


def test_constant_null_round_trips() -> None:
    spec = parse_spec(sweep({"a": {"value": None}, "b": {"values": [None, 1]}}))
    assert parse_spec(spec.to_json_dict()) == spec


def test_spec_hash_ignores_spelling_but_not_content() -> None:
    implicit = parse_spec(sweep({"a": {"min": 1, "max": 3}, "b": {"values": [1]}}))
    explicit = parse_spec({"parameters": {"b": {"distribution": "categorical", "values": [1]},
                                          "a": {"distribution": "int_uniform", "min": 1, "max": 3}},
                           "method": "random", "retries": 2})
    changed = parse_spec(sweep({"a": {"min": 1, "max": 4}, "b": {"values": [1]}}))
    assert implicit.spec_hash() == explicit.spec_hash() != changed.spec_hash()
    assert len(implicit.spec_hash()) == 64


def test_sweep_name_and_warnings() -> None:
    spec = parse_spec({"method": "bayes", "metric": {"name": "l"}, "parameters": {
        "lr": {"distribution": "log_uniform", "min": -9, "max": -2},
        "opt": {"values": ["a", "b"], "probabilities": [0.2, 0.8]}}})
    assert spec.sweep_name("fallback") == "fallback"
    assert parse_spec(sweep({"a": {"value": 1}}, name="n")).sweep_name("fallback") == "n"
    warnings = spec.warnings()
    assert len(warnings) == 2
    assert warnings[0].startswith("parameters.lr: log_uniform takes natural-log exponents")
    assert warnings[1] == ("parameters.opt: only the random sampler honours probabilities; "
                           "tpe treats the values as equally likely")


def test_parse_spec_rejects_non_mappings() -> None:
    assert errors_of([1, 2]) == [
        "<sweep>: a sweep must be a mapping with method:, parameters: ... (got a list)"]


# ------------------------------------------------------------------------- load_spec


def write(tmp_path: Path, text: str, name: str = "sweep.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_load_spec_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "method: grid\nparameters:\n  lr:\n    values: [0.1, 0.01]\n")
    assert load_spec(path).flat_parameters()["lr"].values == [0.1, 0.01]


def test_yaml_dates_are_accepted_as_the_text_wandbs_agent_passes(tmp_path: Path) -> None:
    path = write(tmp_path, "method: grid\nparameters:\n"
                           "  day:\n    values: [2024-01-01, 2024-02-29]\n"
                           "  at:\n    value: 2024-01-01 10:00:00\n"
                           "priors:\n  - day: 2024-02-29\n")
    spec = load_spec(path)
    assert spec.flat_parameters()["day"].values == ["2024-01-01", "2024-02-29"]
    assert spec.flat_parameters()["at"].value == "2024-01-01 10:00:00"
    assert spec.flat_priors() == [{"day": "2024-02-29"}]
    assert parse_spec(spec.to_json_dict()) == spec  # plain JSON all the way down


def test_yaml_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "method: grid\nparameters:\n  lr: [1, 2\n  x: 3\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    (line,) = info.value.errors
    assert line.startswith(f"{path}:4:") and "expected ',' or ']'" in line


def test_yaml_reads_1e_minus_5_as_text_like_wandb(tmp_path: Path) -> None:
    path = write(tmp_path, "method: random\nparameters:\n  lr: {min: 1e-5, max: 1.0e-1}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.errors == ["parameters.lr.min: must be a number (got '1e-5'; YAML 1.1 "
                                 "reads a number like 1e-5 as text: write 1.0e-5)"]


@pytest.mark.parametrize(("text", "needle"), [("", "the sweep file is empty"),
                                              ("- a\n- b\n", "must be a mapping")])
def test_load_spec_empty_or_not_a_mapping(tmp_path: Path, text: str, needle: str) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(write(tmp_path, text))
    assert needle in info.value.errors[0]


def test_load_spec_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as info:
        load_spec(tmp_path / "nope.yaml")
    assert info.value.errors[0].startswith(f"{tmp_path / 'nope.yaml'}: cannot read")


def test_worker_path_resolves_against_sweep_dir(tmp_path: Path, monkeypatch: Any) -> None:
    (tmp_path / "workers").mkdir()
    (tmp_path / "workers" / "digits.py").write_text("def objective(trial, state): return 0\n")
    path = write(tmp_path, "method: random\nworker: workers/digits.py\n"
                           "parameters: {a: {value: 1}}\n")
    monkeypatch.chdir("/")
    spec = load_spec(path)
    assert spec.worker is not None
    assert spec.worker.module == str((tmp_path / "workers" / "digits.py").resolve())


def test_worker_path_not_found(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    path = write(tmp_path, "method: random\nworker: missing.py\nparameters: {a: {value: 1}}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.errors[0].startswith("worker.module: file missing.py not found")
    # the sweep file's folder is the working directory here: named once, not twice
    assert info.value.errors[0].endswith(f"(looked in {tmp_path.resolve()})")


def test_a_python_worker_sweep_needs_only_its_module_as_optuna_needs_only_the_objective() -> None:
    spec = parse_spec({"worker": "obj.py", "run_cap": 20})
    assert spec.method == "bayes" and spec.sampler_name == "tpe"  # Optuna's default sampler
    assert spec.metric is not None and (spec.metric.name, spec.metric.goal) == (
        "value", "minimize")  # and direction
    given = parse_spec({"worker": "obj.py", "metrics": [{"name": "a"}, {"name": "b"}]})
    assert given.metric is None and [m.name for m in given.objectives()] == ["a", "b"]
    with pytest.raises(SpecError, match="method: required"):
        parse_spec({"program": "train.py", "parameters": {"x": {"values": [1, 2]}}})
