"""Optuna objects built from a spec (hq_sweep.controller.space): distributions, latent <->
user values, grids in W&B's order, samplers, pruners, directions and the summary."""

from __future__ import annotations

import importlib.util
import math
from collections import Counter
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from hq_sweep.controller.samplers_pruners import (
    WeightedRandomSampler,
    build_pruner,
    build_sampler,
    study_directions,
)
from hq_sweep.controller.space import SearchSpace, build_space, summary_lines
from hq_sweep.spec.sweep import SpecError, SweepSpec, parse_spec

optuna.logging.set_verbosity(optuna.logging.WARNING)


def make(params: dict[str, Any], **top: Any) -> tuple[SweepSpec, SearchSpace]:
    spec = parse_spec({"method": "random", "parameters": params, **top})
    return spec, build_space(spec)


def one(raw: dict[str, Any], **top: Any) -> tuple[SweepSpec, SearchSpace]:
    return make({"x": raw}, **top)


# ------------------------------------------------------------------------ distributions


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"values": ["a", "b", 3]}, CategoricalDistribution(["a", "b", 3])),
        ({"values": [[1], {"k": 2}]}, CategoricalDistribution([0, 1])),
        ({"values": [1, True, 1.0]}, CategoricalDistribution([0, 1, 2])),  # 1 == True == 1.0
        ({"min": 2, "max": 9}, IntDistribution(2, 9)),
        ({"min": 0.5, "max": 2}, FloatDistribution(0.5, 2.0)),
        ({"distribution": "log_uniform_values", "min": 1e-4, "max": 1},
         FloatDistribution(1e-4, 1.0, log=True)),
        ({"distribution": "log_uniform", "min": -2, "max": 0},
         FloatDistribution(math.exp(-2), 1.0, log=True)),
        ({"distribution": "inv_log_uniform", "min": 0, "max": 2},
         FloatDistribution(math.exp(-2), 1.0, log=True)),
        ({"distribution": "inv_log_uniform_values", "min": 0.1, "max": 10},
         FloatDistribution(0.1, 10.0, log=True)),
        ({"distribution": "q_uniform", "min": 0, "max": 10, "q": 2},
         IntDistribution(0, 10, step=2)),
        ({"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.1},
         FloatDistribution(0.0, 1.0, step=0.1)),
        ({"distribution": "q_uniform", "min": 0.05, "max": 0.97, "q": 0.1}, IntDistribution(0, 10)),
        ({"distribution": "q_log_uniform_values", "min": 1, "max": 64, "q": 2},
         FloatDistribution(1.0, 64.0, log=True)),
        ({"distribution": "normal"}, FloatDistribution(0.0, 1.0)),
        ({"distribution": "q_beta"}, FloatDistribution(0.0, 1.0)),
    ],
)
def test_latent_distributions(raw: dict[str, Any], expected: Any) -> None:
    _, space = one(raw)
    assert space.distributions == {"x": expected}


def test_constants_are_kept_apart() -> None:
    _, space = make({"a": {"value": [1, 2]}, "b": {"values": [1, 2]}})
    assert space.constants == {"a": [1, 2]} and set(space.distributions) == {"b"}
    assert space.to_params({"b": 2}) == {"a": [1, 2], "b": 2}


EVERY: dict[str, tuple[dict[str, Any], int | float | None]] = {
    "categorical": ({"values": ["x", [1, 2], {"k": None}]}, None),
    "probabilities": ({"values": [1, 2], "probabilities": [0.5, 0.5]}, None),
    "int_uniform": ({"min": -3, "max": 3}, None),
    "uniform": ({"min": -1.5, "max": 2.5}, None),
    "log_uniform": ({"distribution": "log_uniform", "min": -9.2, "max": -2.3}, None),
    "log_uniform_values": ({"distribution": "log_uniform_values", "min": 1e-4, "max": 0.1}, None),
    "inv_log_uniform": ({"distribution": "inv_log_uniform", "min": 1, "max": 3}, None),
    "inv_log_uniform_values": (
        {"distribution": "inv_log_uniform_values", "min": 0.01, "max": 1}, None),
    "q_uniform": ({"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.1}, 0.1),
    "q_uniform_int": ({"distribution": "q_uniform", "min": 1, "max": 20, "q": 3}, 3),
    "q_uniform_default": ({"distribution": "q_uniform", "min": 0, "max": 5}, 1.0),
    "q_log_uniform": ({"distribution": "q_log_uniform", "min": 0, "max": 5, "q": 2}, 2),
    "q_log_uniform_values": (
        {"distribution": "q_log_uniform_values", "min": 1, "max": 512, "q": 8}, 8),
    "normal": ({"distribution": "normal", "mu": 3, "sigma": 0.5}, None),
    "q_normal": ({"distribution": "q_normal", "mu": 10, "sigma": 3, "q": 2}, 2),
    "log_normal": ({"distribution": "log_normal", "mu": -1, "sigma": 0.3}, None),
    "q_log_normal": ({"distribution": "q_log_normal", "mu": 3, "sigma": 1, "q": 0.5}, 0.5),
    "beta": ({"distribution": "beta", "a": 2, "b": 5}, None),
    "q_beta": ({"distribution": "q_beta", "a": 0.5, "b": 0.5, "q": 0.1}, 0.1),
}


@pytest.mark.parametrize("case", sorted(EVERY))
def test_samples_fall_inside_the_support(case: str) -> None:
    raw, q = EVERY[case]
    spec, space = one(raw)
    p = spec.flat_parameters()["x"]
    study = optuna.create_study(sampler=build_sampler(spec, space, seed=0))
    for _ in range(150):
        trial = study.ask(space.distributions)
        value = space.to_params(trial.params)["x"]
        study.tell(trial, 0.0)
        assert p.value_problem(value) is None, (case, value)
        dist = space.distributions["x"]  # the inverse lands inside the latent distribution
        assert dist._contains(dist.to_internal_repr(space.to_latent({"x": value})["x"]))
        if q is not None:
            assert type(value) is type(q), (case, value)  # W&B: ints iff q is an int
            assert value == round(round(value / q) * q, 10), (case, value)  # no float drift


def test_quantized_values_have_no_float_drift() -> None:
    _, space = one({"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.1})
    values = {space.to_params({"x": k * 0.1})["x"] for k in range(11)}
    assert values == {0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0}


def test_transforms_follow_the_inverse_cdf() -> None:
    _, space = make({
        "n": {"distribution": "normal", "mu": 3, "sigma": 2},
        "ln": {"distribution": "log_normal", "mu": 1, "sigma": 0.5},
        "b": {"distribution": "beta", "a": 2, "b": 2},
        "z": {"distribution": "normal", "mu": 4, "sigma": 0},
    })
    median = space.to_params({"n": 0.5, "ln": 0.5, "b": 0.5, "z": 0.9})
    assert median["n"] == pytest.approx(3) and median["ln"] == pytest.approx(math.e)
    assert median["b"] == pytest.approx(0.5) and median["z"] == 4
    low = space.to_params({"n": 0.0, "ln": 0.0})  # the open interval: clipped, still finite
    assert math.isfinite(low["n"]) and low["ln"] > 0


# ------------------------------------------------------------------ latent <-> user values


ROUND_TRIP = {
    "c": {"values": ["x", [1, 2], {"k": None}]},
    "i": {"min": -3, "max": 3},
    "u": {"min": -1.5, "max": 2.5},
    "l": {"distribution": "log_uniform_values", "min": 1e-4, "max": 0.1},
    "q": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.1},
    "k": {"distribution": "q_uniform", "min": 0.05, "max": 0.97, "q": 0.1},
    "n": {"distribution": "q_normal", "mu": 10, "sigma": 3, "q": 2},
    "b": {"distribution": "beta", "a": 2, "b": 5},
    "m": {"parameters": {"d": {"values": [1, 2, 3]}, "act": {"value": "relu"}}},
}


def test_to_latent_and_to_params_round_trip() -> None:
    spec, space = make(ROUND_TRIP)
    study = optuna.create_study(sampler=build_sampler(spec, space, seed=3))
    for _ in range(50):
        trial = study.ask(space.distributions)
        params = space.to_params(trial.params)
        study.tell(trial, 0.0)
        again = space.to_params(space.to_latent(params))
        assert again.keys() == params.keys()
        for name, value in params.items():
            if isinstance(value, float):
                assert again[name] == pytest.approx(value, rel=1e-9), name
            else:
                assert again[name] == value, name


def test_to_latent_of_categorical_values() -> None:
    _, space = make({"c": {"values": [[1], {"k": 2}]}, "s": {"values": [1, 2.5]}})
    assert space.to_latent({"c": {"k": 2}, "s": 1.0}) == {"c": 1, "s": 1}
    with pytest.raises(ValueError, match="not one of its values"):
        space.to_latent({"c": [2]})
    assert space.to_latent({"unknown": 1, "c": [1]}) == {"c": 0}


def test_priors_map_to_latents_optuna_accepts() -> None:
    spec = parse_spec({"method": "bayes", "metric": {"name": "l"}, "parameters": ROUND_TRIP,
                       "priors": [{"i": 2, "m": {"d": 3}, "q": 0.3, "c": [1, 2]}]})
    space = build_space(spec)
    (latent,) = [space.to_latent(p) for p in spec.flat_priors()]
    study = optuna.create_study(sampler=build_sampler(spec, space, seed=1))
    study.enqueue_trial(latent)
    trial = study.ask(space.distributions)
    params = space.to_params(trial.params)
    assert {k: params[k] for k in ("i", "m.d", "q", "c")} == {
        "i": 2, "m.d": 3, "q": 0.3, "c": [1, 2]}


# ------------------------------------------------------------------------ nest / flatten


def test_nest_and_flatten_follow_the_spec() -> None:
    _, space = make({
        "model": {"parameters": {"depth": {"values": [1]},
                                 "opt": {"parameters": {"lr": {"value": 0.1}}}}},
        "a.b": {"values": [{"x": 1}]},
        "top": {"value": 1},
    })
    flat = {"model.depth": 1, "model.opt.lr": 0.1, "a.b": {"x": 1}, "top": 1}
    nested = {"model": {"depth": 1, "opt": {"lr": 0.1}}, "a.b": {"x": 1}, "top": 1}
    assert space.nest(flat) == nested
    assert space.flatten(nested) == flat
    assert space.flatten({"model.depth": 1, "model": {"opt": {"lr": 0.1}}}) == {
        "model.depth": 1, "model.opt.lr": 0.1}
    assert space.nest({"extra": 5}) == {"extra": 5}


# --------------------------------------------------------------------------------- grid


ARGO = {"algorithm": "grid", "hyperparams": {
    "learning-rate": {"range": {"min": 0.1, "max": 0.5, "step": 0.1}},
    "model": {"values": ["RandomForest", "SVM", "LogisticRegression"]}}}


def test_argo_example_creates_twelve_models() -> None:
    spec = parse_spec(ARGO)
    space = build_space(spec)
    grid = space.grid()
    assert grid is not None and space.grid_size() == 12 and len(grid) == 12
    assert sorted({p["learning-rate"] for p in grid}) == [0.1, 0.2, 0.3, 0.4]
    assert grid[0] == {"learning-rate": 0.1, "model": "RandomForest"}
    assert grid[1] == {"learning-rate": 0.1, "model": "SVM"}
    assert grid[11] == {"learning-rate": 0.4, "model": "LogisticRegression"}


def test_grid_order_matches_wandb() -> None:
    spec = parse_spec({"method": "grid", "parameters": {
        "b": {"values": [1, 2]},
        "a": {"parameters": {"z": {"values": ["x", "y"]}, "c": {"value": 0}}},
        "i": {"min": 1, "max": 3},
        "q": {"distribution": "q_uniform", "min": 0, "max": 0.3, "q": 0.1},
        "dup": {"values": [5, 5.0, 5]},
    }})
    space = build_space(spec)
    grid = space.grid()
    assert grid is not None
    assert space.grid_size() == len(grid) == 2 * 2 * 3 * 3 * 2
    assert list(grid[0]) == ["a.c", "a.z", "b", "dup", "i", "q"]
    assert grid[0] == {"a.c": 0, "a.z": "x", "b": 1, "dup": 5, "i": 1, "q": 0.0}
    assert grid[1] == {"a.c": 0, "a.z": "x", "b": 1, "dup": 5, "i": 1, "q": 0.1}
    assert [p["q"] for p in grid[:3]] == [0.0, 0.1, 0.2]  # np.arange: max excluded
    assert sorted({p["i"] for p in grid}) == [1, 2, 3]  # int_uniform: max included
    assert [p["dup"] for p in grid[:6:3]] == [5, 5.0]  # W&B dedups equal YAML only
    assert all(space.grid_point(i) == point for i, point in enumerate(grid))
    with pytest.raises(IndexError):
        space.grid_point(len(grid))


def test_grid_points_are_exact_latents() -> None:
    spec = parse_spec({"method": "grid", "parameters": {
        "q": {"distribution": "q_uniform", "min": 0.05, "max": 0.5, "q": 0.1},
        "i": {"min": 1, "max": 3}, "c": {"values": [[1], [2]]}}})
    space = build_space(spec)
    assert isinstance(space.distributions["q"], CategoricalDistribution)
    for point in space.grid() or []:
        latent = space.to_latent(point)
        assert all(space.distributions[k]._contains(
            space.distributions[k].to_internal_repr(v)) for k, v in latent.items())
        assert space.to_params(latent) == point


def test_grid_of_continuous_space_is_none() -> None:
    _, space = make({"a": {"values": [1, 2]}, "b": {"min": 0.0, "max": 1.0}})
    assert space.grid() is None and space.grid_size() is None
    _, constants_only = make({"a": {"value": 1}})
    assert constants_only.grid() == [{"a": 1}] and constants_only.grid_size() == 1


# ---------------------------------------------------------------------------- samplers

SAMPLER_CLASSES = {
    "random": optuna.samplers.RandomSampler, "grid": optuna.samplers.RandomSampler,
    "tpe": optuna.samplers.TPESampler, "qmc": optuna.samplers.QMCSampler,
    "nsgaii": optuna.samplers.NSGAIISampler, "bruteforce": optuna.samplers.BruteForceSampler,
    "gp": optuna.samplers.GPSampler, "cmaes": optuna.samplers.CmaEsSampler,
}
NEEDS = {"gp": "torch", "cmaes": "cmaes"}


@pytest.mark.parametrize("name", sorted(SAMPLER_CLASSES))
def test_build_sampler_for_every_name(name: str) -> None:
    spec, space = make({"a": {"values": [1, 2, 3]}, "b": {"min": 1, "max": 4}}, sampler=name)
    module = NEEDS.get(name)
    if module is not None and importlib.util.find_spec(module) is None:
        with pytest.raises(SpecError) as info:
            build_sampler(spec, space)
        assert info.value.errors[0].startswith(f"sampler.name: '{name}' needs")
        pytest.skip(f"{module} is not installed")
    sampler = build_sampler(spec, space, seed=1)
    assert isinstance(sampler, SAMPLER_CLASSES[name])
    study = optuna.create_study(sampler=sampler)
    for _ in range(3):
        trial = study.ask(space.distributions)
        assert space.to_params(trial.params)["a"] in (1, 2, 3)
        study.tell(trial, 1.0)


def test_gp_without_torch_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "torch" else real(name, *a))
    spec, space = make({"a": {"min": 0.0, "max": 1.0}}, sampler="gp")
    with pytest.raises(SpecError) as info:
        build_sampler(spec, space)
    assert info.value.errors == ["sampler.name: 'gp' needs PyTorch: pip install torch"]


def test_bayes_defaults_to_tpe_multivariate_constant_liar() -> None:
    spec = parse_spec({"method": "bayes", "metric": {"name": "l"},
                       "parameters": {"a": {"min": 0.0, "max": 1.0}}})
    sampler = build_sampler(spec, build_space(spec))
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._multivariate is True and sampler._constant_liar is True


def test_sampler_options_and_seed_precedence() -> None:
    spec, space = make({"a": {"min": 0.0, "max": 1.0}}, seed=5,
                       sampler={"name": "tpe", "options": {"n_startup_trials": 3,
                                                           "multivariate": False}})
    sampler = build_sampler(spec, space)
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._n_startup_trials == 3 and sampler._multivariate is False

    def first(arg: int | None, **top: Any) -> float:
        s, sp = make({"a": {"min": 0.0, "max": 1.0}}, **top)
        study = optuna.create_study(sampler=build_sampler(s, sp, seed=arg))
        return float(study.ask(sp.distributions).params["a"])

    assert first(None, seed=5) == first(5) == first(None, seed=9, sampler={"name": "random",
                                                                          "seed": 5})
    assert first(None, seed=5) != first(6)


@pytest.mark.parametrize(
    ("sampler", "line"),
    [
        ({"name": "tpe", "options": {"n_startup": 3}},
         "sampler.options.n_startup: unknown option for TPESampler"),
        ({"name": "random", "options": {"x": 1}},
         "sampler.options.x: unknown option for RandomSampler (it takes none)"),
        ({"name": "qmc", "options": {"qmc_type": "nope"}}, "sampler.options: "),
    ],
)
def test_sampler_option_errors(sampler: dict[str, Any], line: str) -> None:
    spec, space = make({"a": {"min": 0.0, "max": 1.0}}, sampler=sampler)
    with pytest.raises(SpecError) as info:
        build_sampler(spec, space)
    (error,) = info.value.errors
    assert error.startswith(line) and "\n" not in error


def test_random_sampler_honours_probabilities() -> None:
    spec, space = make({"w": {"values": ["a", "b"], "probabilities": [0.9, 0.1]},
                        "o": {"values": [[1], [2]], "probabilities": [0.2, 0.8]}})
    sampler = build_sampler(spec, space, seed=0)
    assert isinstance(sampler, WeightedRandomSampler)
    study = optuna.create_study(sampler=sampler)
    counts: Counter[str] = Counter()
    for _ in range(400):
        trial = study.ask(space.distributions)
        params = space.to_params(trial.params)
        counts[params["w"]] += 1
        counts[str(params["o"])] += 1
        study.tell(trial, 0.0)
    assert 320 < counts["a"] < 395 and 280 < counts["[2]"] < 360


# ----------------------------------------------------------------------------- pruners


@pytest.mark.parametrize(
    ("pruner", "cls"),
    [
        (None, optuna.pruners.NopPruner),
        ("median", optuna.pruners.MedianPruner),
        ({"name": "percentile", "options": {"percentile": 25}}, optuna.pruners.PercentilePruner),
        ("asha", optuna.pruners.SuccessiveHalvingPruner),
        ({"name": "hyperband", "options": {"min_resource": 1, "max_resource": 27}},
         optuna.pruners.HyperbandPruner),
        ({"name": "threshold", "options": {"upper": 1.0}}, optuna.pruners.ThresholdPruner),
        ({"name": "patient", "options": {"patience": 3, "wrapped_pruner": "median"}},
         optuna.pruners.PatientPruner),
        ({"name": "patient", "options": {"patience": 2}}, optuna.pruners.PatientPruner),
        ("wilcoxon", optuna.pruners.WilcoxonPruner),
        ("nop", optuna.pruners.NopPruner),
    ],
)
def test_build_pruner_for_every_name(pruner: Any, cls: type) -> None:
    top = {} if pruner is None else {"pruner": pruner}
    spec, _ = make({"a": {"min": 0.0, "max": 1.0}}, **top)
    assert isinstance(build_pruner(spec), cls)


def test_patient_pruner_wraps_the_named_pruner() -> None:
    spec, _ = make({"a": {"min": 0.0, "max": 1.0}}, pruner={
        "name": "patient", "options": {"patience": 1, "wrapped_pruner": {
            "name": "median", "options": {"n_startup_trials": 7}}}})
    pruner = build_pruner(spec)
    assert isinstance(pruner, optuna.pruners.PatientPruner)
    assert isinstance(pruner._wrapped_pruner, optuna.pruners.MedianPruner)
    assert pruner._wrapped_pruner._n_startup_trials == 7


@pytest.mark.parametrize(
    ("pruner", "line"),
    [
        ({"name": "percentile"}, "pruner.options.percentile: required by PercentilePruner"),
        ({"name": "median", "options": {"warmup": 3}},
         "pruner.options.warmup: unknown option for MedianPruner"),
        ({"name": "nop", "options": {"x": 1}}, "pruner.options.x: unknown option for NopPruner"),
        ({"name": "threshold"}, "pruner.options: "),
        ({"name": "patient", "options": {"patience": 1, "wrapped_pruner": "bogus"}},
         "pruner.options.wrapped_pruner.name: must be one of median"),
        ({"name": "patient", "options": {"patience": 1, "wrapped_pruner": {
            "name": "median", "options": {"bad": 1}}}},
         "pruner.options.wrapped_pruner.options.bad: unknown option for MedianPruner"),
    ],
)
def test_pruner_option_errors(pruner: dict[str, Any], line: str) -> None:
    spec, _ = make({"a": {"min": 0.0, "max": 1.0}}, pruner=pruner)
    with pytest.raises(SpecError) as info:
        build_pruner(spec)
    (error,) = info.value.errors
    assert error.startswith(line) and "\n" not in error


# ---------------------------------------------------------------- directions, summary


def test_study_directions() -> None:
    minimize = optuna.study.StudyDirection.MINIMIZE
    maximize = optuna.study.StudyDirection.MAXIMIZE
    assert study_directions(make({"a": {"value": 1}})[0]) == [minimize]
    assert study_directions(make({"a": {"value": 1}}, metric={
        "name": "acc", "goal": "maximize"})[0]) == [maximize]
    spec = make({"a": {"value": 1}}, metrics=[{"name": "acc", "goal": "maximize"},
                                              {"name": "t"}])[0]
    assert study_directions(spec) == [maximize, minimize]
    study = optuna.create_study(directions=study_directions(spec))
    assert len(study.directions) == 2


def test_summary_lines() -> None:
    spec = parse_spec({
        "name": "demo", "method": "grid", "metric": {"name": "acc", "goal": "maximize",
                                                     "target": 0.99},
        "run_cap": 10, "early_terminate": {"type": "hyperband", "min_iter": 1},
        "parameters": {"lr": {"values": [0.1, 0.01]}, "d": {"min": 1, "max": 3},
                       "m": {"parameters": {"act": {"value": "relu"}}}},
    })
    lines = summary_lines(spec, build_space(spec))
    assert lines[:4] == ["name: demo", "method: grid, sampler: grid",
                         "metric: acc (maximize), target 0.99",
                         "parameters: 2 searched, 1 constant"]
    assert "  d: int_uniform [1, 3]" in lines and "  m.act: constant 'relu'" in lines
    assert "  lr: categorical of 2: [0.1, 0.01]" in lines
    assert "grid: 6 combinations" in lines and "run_cap: 10" in lines
    assert any(line.startswith("early_terminate: hyperband eta=3 strict=true milestones 1, 3, 9")
               for line in lines)
    other = parse_spec({"method": "random", "pruner": "median",
                        "parameters": {"x": {"distribution": "log_uniform", "min": -2, "max": 0}}})
    text = "\n".join(summary_lines(other, build_space(other)))
    assert "metric: value (minimize): the number the objective returns" in text
    assert "x: log_uniform [-2, 0] (values 0.1353..1)" in text
    assert "grid: not finite" in text and "pruner: median" in text
