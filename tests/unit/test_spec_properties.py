"""Property tests for the sweep-file parser: whatever YAML-like structure, text or bytes comes
in, the parser returns a valid spec or raises SpecError whose every line names a path; never
another exception. Near-valid inputs (mutations of the example sweep files) find more than
noise, so most examples start from one."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hq_sweep.spec.reading import load_yaml
from hq_sweep.spec.sweep import (
    SpecError,
    StoredSpecError,
    SweepSpec,
    load_spec,
    parse_spec,
    parse_stored_spec,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_FILES = sorted((ROOT / "examples").rglob("*.yaml"))
BUDGET = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Near-valid sweeps beside the examples: every section and parameter form the parser knows.
HANDWRITTEN: list[dict[str, Any]] = [
    {"method": "grid", "parameters": {"a": {"values": [1, 2]}, "b": {"value": "x"},
                                      "g": {"parameters": {"c": {"values": [True, None]}}}}},
    {"method": "bayes", "metric": {"name": "loss", "goal": "minimize", "target": 0.1},
     "early_terminate": {"type": "hyperband", "min_iter": 2, "eta": 3, "strict": True},
     "parameters": {"lr": {"distribution": "log_uniform", "min": -5.0, "max": 0.0},
                    "q": {"distribution": "q_normal", "mu": 0.0, "sigma": 1.0, "q": 0.5},
                    "be": {"distribution": "beta", "a": 2.0, "b": 3.0}}},
    {"method": "random", "metrics": [{"name": "a", "goal": "maximize"}, {"name": "b"}],
     "parameters": {"x": {"values": ["u", "v"], "probabilities": [0.25, 0.75]},
                    "r": {"range": {"min": 1, "max": 4, "step": 1}}},
     "sampler": {"name": "nsga2", "seed": 3}, "pruner": {"name": "nop"},
     "priors": [{"x": "u", "r": 1}], "run_cap": 5, "seed": 1, "retries": 0},
    {"method": "random", "program": "train.py", "parameters": {"x": {"min": 0, "max": 9}},
     "command": ["${env}", "${interpreter}", "${program}", "${args}"],
     "controller": {"type": "local"}, "trial_timeout": 3.5, "lease": 5},
    {"worker": {"module": "pkg.mod", "objective": "obj"}, "run_cap": 3},
]


def _base_sweeps() -> list[Any]:
    loaded = [yaml.safe_load(path.read_text()) for path in EXAMPLE_FILES]
    return [*loaded, *HANDWRITTEN]


BASES = _base_sweeps()

WORDS = (
    "method", "parameters", "metric", "metrics", "early_terminate", "name", "description",
    "program", "command", "run_cap", "worker", "sampler", "pruner", "retries", "seed",
    "priors", "hyperparams", "algorithm", "parallelism", "lease", "trial_timeout", "goal",
    "target", "type", "min_iter", "max_iter", "eta", "s", "strict", "module", "objective",
    "setup", "options", "values", "value", "min", "max", "distribution", "q", "mu", "sigma",
    "a", "b", "probabilities", "range", "step", "grid", "random", "bayes", "tpe", "hyperband",
    "uniform", "log_uniform", "log_uniform_values", "int_uniform", "categorical", "normal",
    "q_log_uniform_values", "inv_log_uniform", "beta", "minimize", "maximize", "apiVersion",
    "kind", "sweep", "presample", "auto", "x", "lr", "",
)
scalars = (st.none() | st.booleans() | st.sampled_from(WORDS)
           | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12))
keys = st.sampled_from(WORDS) | st.text(max_size=8) | st.integers(-3, 3) | st.booleans()
trees = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children,
                                                                      max_size=5),
    max_leaves=25,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a parsed document, the root included."""
    found = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            found += _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            found += _paths(child, (*prefix, index))
    return found


def _parent_and_key(doc: Any, path: tuple[Any, ...]) -> tuple[Any, Any]:
    parent = doc
    for step in path[:-1]:
        parent = parent[step]
    return parent, path[-1]


@st.composite
def mutated(draw: st.DrawFn) -> Any:
    """A base sweep with a few edits: a value replaced, a key dropped or added, a scalar
    turned into a near miss (a string for a number, a negative, a huge value)."""
    doc = copy.deepcopy(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(_paths(doc)))
        if not path:
            doc = draw(trees) if draw(st.integers(0, 9)) == 0 else doc
            continue
        parent, key = _parent_and_key(doc, path)
        action = draw(st.sampled_from(["replace", "drop", "add", "near"]))
        if action == "drop":
            del parent[key]
        elif action == "add" and isinstance(parent[key], dict):
            parent[key][draw(keys)] = draw(trees)
        elif action == "near":
            parent[key] = _near_miss(draw, parent[key])
        else:
            parent[key] = draw(trees)
    return doc


def _near_miss(draw: st.DrawFn, value: Any) -> Any:
    if isinstance(value, bool):
        return draw(st.sampled_from(["true", 1, None]))
    if isinstance(value, int | float):
        return draw(st.sampled_from([str(value), -value, value * 10**12, math.inf, 0, 0.5,
                                     float("nan"), [value], {"min": value}]))
    if isinstance(value, str):
        return draw(st.sampled_from([value.upper(), value + "x", "", [value], 7, None]))
    if isinstance(value, list):
        return draw(st.sampled_from([[], value * 3, value[:1], [value], {"values": value}]))
    return draw(st.sampled_from([None, [], "", [value]]))


# A problem's line starts with its path (`parameters.lr.min: ...`, `priors[0].x: ...`) or,
# for the file as a whole, with its source (`<sweep>: a sweep must be a mapping ...`).
PATH_LINE = re.compile(r"^\S[^\n]*?: \S")


def _assert_outcome(data: Any) -> None:
    try:
        spec = parse_spec(data)
    except SpecError as exc:
        assert exc.lines(), "a SpecError with no line"
        for line in exc.lines():
            assert PATH_LINE.match(line), f"line names no path: {line!r}"
            assert "\n" not in line and "pydantic" not in line.lower(), line
        return
    _assert_usable(spec)


def _assert_usable(spec: SweepSpec) -> None:
    """A spec the parser accepts works everywhere it is used, and round-trips."""
    assert parse_spec(spec.to_json_dict()) == spec  # the documented round trip
    assert spec.spec_hash() == parse_spec(spec.to_json_dict()).spec_hash()
    spec.flat_parameters()
    spec.flat_priors()
    spec.warnings()
    assert spec.objectives()
    assert isinstance(spec.sampler_name, str)


@pytest.mark.timeout(120)
@BUDGET
@given(mutated())
def test_mutated_sweep_files_parse_or_fail_with_path_precise_errors(data: Any) -> None:
    _assert_outcome(data)


@pytest.mark.timeout(120)
@BUDGET
@given(st.dictionaries(st.sampled_from(WORDS), trees, max_size=6) | trees)
def test_arbitrary_structures_parse_or_fail_with_path_precise_errors(data: Any) -> None:
    _assert_outcome(data)


@pytest.mark.timeout(120)
@BUDGET
@given(st.sampled_from(BASES), st.dictionaries(st.sampled_from(WORDS), trees, max_size=3))
def test_parameters_of_any_shape_parse_or_fail_with_path_precise_errors(
        base: Any, parameter: dict[Any, Any]) -> None:
    doc = copy.deepcopy(base)
    doc["parameters"] = {"p": parameter, "q": {"values": [1, 2]}}
    _assert_outcome(doc)


def test_the_examples_are_valid_bases() -> None:
    assert len(EXAMPLE_FILES) >= 4
    for base in BASES:
        if isinstance(base.get("worker"), str):
            continue  # a relative worker file is resolved by load_spec, not parse_spec
        parse_spec(base)


YAMLISH = st.text(alphabet=st.sampled_from(list(":-[]{},#&*!|>'\"%@` \n\t?ab1.e")), max_size=80)


@pytest.mark.timeout(120)
@BUDGET
@given(st.text(max_size=200) | YAMLISH)
def test_any_text_reads_as_yaml_or_fails_naming_the_file(text: str) -> None:
    try:
        data = load_yaml(text, "f.yaml")
    except SpecError as exc:
        assert all(line.startswith("f.yaml") for line in exc.lines()), exc.lines()
        return
    if data is not None:
        _assert_outcome(data)


@st.composite
def _cut_example(draw: st.DrawFn) -> str:
    """An example file with a slice removed or repeated: broken indentation, lost quotes."""
    text = draw(st.sampled_from([p.read_text() for p in EXAMPLE_FILES]))
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, min(len(text), start + 40)))
    return text[:start] + draw(st.sampled_from(["", text[start:end] * 2, "\t", ": ["])) + \
        text[end:]


@pytest.mark.timeout(120)
@BUDGET
@given(_cut_example())
def test_damaged_example_text_reads_or_fails_naming_the_file(text: str) -> None:
    try:
        data = load_yaml(text, "f.yaml")
    except SpecError as exc:
        assert all(line.startswith("f.yaml") for line in exc.lines()), exc.lines()
        return
    if isinstance(data, dict) and isinstance(data.get("worker"), str):
        data["worker"] = "pkg.mod"  # keep the file's resolution out of a pure parser test
    _assert_outcome(data)


@pytest.mark.timeout(120)
@settings(BUDGET, max_examples=100)
@given(st.binary(max_size=300))
def test_any_bytes_in_a_file_load_or_fail_naming_the_file(tmp_path_factory: pytest.TempPathFactory,
                                                          raw: bytes) -> None:
    path = tmp_path_factory.mktemp("bytes") / "sweep.yaml"
    path.write_bytes(raw)
    try:
        load_spec(path)
    except SpecError as exc:
        assert exc.lines()
        for line in exc.lines():
            assert line.startswith(str(path)) or PATH_LINE.match(line), line


def test_deep_nesting_is_an_error_not_a_crash() -> None:
    deep = "[" * 5000 + "]" * 5000
    with pytest.raises(SpecError) as info:
        load_yaml(deep, "deep.yaml")
    assert info.value.lines()[0].startswith("deep.yaml")
    nested: Any = {"values": [1]}
    for _ in range(3000):
        nested = {"parameters": {"g": nested}}
    _assert_outcome({"method": "random", "parameters": {"g": nested}})


@pytest.mark.timeout(120)
@BUDGET
@given(st.text(max_size=60) | st.builds(str, trees))
def test_a_stored_spec_of_any_text_is_a_stored_spec_error(text: str) -> None:
    try:
        parse_stored_spec(text, "s")
    except StoredSpecError as exc:  # anything else (a SpecError too) fails the test
        assert str(exc).startswith("sweep s: ") and "hq-sweep delete s" in str(exc)
