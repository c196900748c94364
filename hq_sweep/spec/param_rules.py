"""Validation of one parameter spec, rule for rule as W&B's schema.json states it.

See param_tree.py for the sources. :func:`check_leaf` returns the normalized spec (the
distribution made explicit, defaults filled, an Argo range expanded) or every issue found.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from hq_sweep.spec.issues import Issue, Loc, show, suggest
from hq_sweep.spec.values import (
    MAX_VALUES,
    Number,
    as_json,
    decimal_range,
    json_problem,
    number_problem,
    range_count,
)

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")

_MIN_MAX = ("min", "max")
# distribution -> (required keys, optional keys), besides `distribution` itself.
_SHAPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "constant": (("value",), ()),
    "categorical": (("values",), ()),
    "categorical_w_probabilities": (("values", "probabilities"), ()),
    "int_uniform": (_MIN_MAX, ()),
    "uniform": (_MIN_MAX, ()),
    "log_uniform": (_MIN_MAX, ()),
    "log_uniform_values": (_MIN_MAX, ()),
    "inv_log_uniform": (_MIN_MAX, ()),
    "inv_log_uniform_values": (_MIN_MAX, ()),
    "q_uniform": (_MIN_MAX, ("q",)),
    "q_log_uniform": (_MIN_MAX, ("q",)),
    "q_log_uniform_values": (_MIN_MAX, ("q",)),
    "normal": ((), ("mu", "sigma")),
    "q_normal": ((), ("mu", "sigma", "q")),
    "log_normal": ((), ("mu", "sigma")),
    "q_log_normal": ((), ("mu", "sigma", "q")),
    "beta": ((), ("a", "b")),
    "q_beta": ((), ("a", "b", "q")),
}
DISTRIBUTIONS: tuple[str, ...] = tuple(_SHAPES)
CATEGORICAL = frozenset({"categorical", "categorical_w_probabilities"})
# What W&B's grid search accepts (grid_search.py); probabilities are refused there.
GRID_DISTRIBUTIONS = frozenset({"constant", "categorical", "int_uniform", "q_uniform"})
# W&B warns that these take natural-log exponents (params.py PARAM_DEPRECATION_MAP).
EXPONENT_FORMS = {
    "log_uniform": "log_uniform_values",
    "inv_log_uniform": "inv_log_uniform_values",
    "q_log_uniform": "q_log_uniform_values",
}
_POSITIVE_MIN = frozenset({"log_uniform_values", "inv_log_uniform_values", "q_log_uniform_values"})
_DEFAULTS: dict[str, Number] = {"q": 1.0, "mu": 0.0, "sigma": 1.0, "a": 1, "b": 1}
_PARAM_KEYS = ("distribution", "value", "values", "probabilities", "min", "max", "q", "mu",
               "sigma", "a", "b", "range", "parameters")
_MAX_EXPONENT = 700  # exp(709) is the largest finite double


# ---------------------------------------------------------------------------- leaf checks


def check_leaf(data: Any) -> tuple[dict[str, Any], list[Issue]]:
    """Validate one raw parameter spec; returns (normalized dict, issues)."""
    if not isinstance(data, Mapping):
        hint = f" (for a constant write {{value: {show(data)}}})" if data is not None else ""
        msg = f"must be a mapping such as {{values: [...]}} or {{min: 0, max: 1}}{hint}"
        return {}, [((), msg)]
    if not all(isinstance(k, str) for k in data):
        return {}, [((), "keys must be strings")]
    dist, issues = resolve_distribution(data)
    if dist is None:
        return {}, issues
    issues = _key_issues(data, dist)
    for key in data:
        if key in _FIELD_CHECKS and _allowed(key, dist, data):
            issues += [((key, *sub), msg) for sub, msg in _FIELD_CHECKS[key](data[key], dist)]
    if issues:
        return {}, issues
    cleaned = _normalized(data, dist)
    return cleaned, _relation_issues(cleaned)


def resolve_distribution(data: Mapping[str, Any]) -> tuple[str | None, list[Issue]]:
    """The distribution a raw spec names or implies (W&B's inference order)."""
    if "distribution" in data:
        dist = data["distribution"]
        if not isinstance(dist, str) or dist not in _SHAPES:
            hint = suggest(dist, DISTRIBUTIONS) if isinstance(dist, str) else ""
            msg = f"must be one of {', '.join(DISTRIBUTIONS)} (got {show(dist)}){hint}"
            return None, [(("distribution",), msg)]
        if "range" in data and dist != "categorical":
            return None, [(("range",), f"not allowed with distribution {dist}")]
        return dist, []
    if "range" in data or "values" in data:
        return ("categorical_w_probabilities" if "probabilities" in data else "categorical"), []
    if "value" in data:
        return "constant", []
    if "min" in data or "max" in data:
        both_int = all(type(data[k]) is int for k in _MIN_MAX if k in data)
        return ("int_uniform" if both_int else "uniform"), []
    shape = [k for k in ("mu", "sigma", "q", "a", "b") if k in data]
    if shape:
        choices = ", ".join(d for d in DISTRIBUTIONS if set(shape) <= set(_SHAPES[d][1]))
        return None, [(("distribution",), f"required with {', '.join(shape)} (one of {choices})")]
    unknown: list[Issue] = [((k,), "unknown key" + suggest(k, _PARAM_KEYS))
                            for k in data if k not in _PARAM_KEYS]
    return None, unknown or [((), "needs values, value, min and max, range, or a distribution")]


def _allowed_keys(dist: str, data: Mapping[str, Any]) -> set[str]:
    required, optional = _SHAPES[dist]
    allowed = {"distribution", *required, *optional}
    if "range" in data:
        allowed |= {"range", "values"}
    return allowed


def _allowed(key: str, dist: str, data: Mapping[str, Any]) -> bool:
    return key in _allowed_keys(dist, data)


def _key_issues(data: Mapping[str, Any], dist: str) -> list[Issue]:
    allowed = _allowed_keys(dist, data)
    issues: list[Issue] = []
    for key in data:
        if key in allowed:
            continue
        if key not in _PARAM_KEYS:
            issues.append(((key,), "unknown key" + suggest(key, _PARAM_KEYS)))
            continue
        takes = ", ".join(k for k in _PARAM_KEYS if k in allowed and k != "distribution")
        msg = f"not allowed for {dist} (it takes {takes})"
        if key == "probabilities" and dist == "categorical":
            msg += "; use distribution categorical_w_probabilities or leave distribution out"
        elif key == "q" and dist in ("uniform", "int_uniform"):
            msg += "; for steps use distribution q_uniform"
        issues.append(((key,), msg))
    required = _SHAPES[dist][0]
    covered = {"values"} if "range" in data else set()
    issues += [((k,), f"required for {dist}")
               for k in required if k not in data and k not in covered]
    return issues


def _normalized(data: Mapping[str, Any], dist: str) -> dict[str, Any]:
    out: dict[str, Any] = {"distribution": dist}
    for key in ("value", "values", "probabilities", "min", "max", "q", "mu", "sigma", "a", "b"):
        if key in data:
            out[key] = as_json(data[key])
    for key in _SHAPES[dist][1]:
        out.setdefault(key, _DEFAULTS[key])
    if "range" in data:
        r = data["range"]
        out["values"] = decimal_range(r["min"], r["max"], r["step"]) + list(out.get("values", []))
    return out


def _relation_issues(p: Mapping[str, Any]) -> list[Issue]:
    issues: list[Issue] = []
    if "min" in p and "max" in p and not p["min"] < p["max"]:
        issues.append((("max",), f"must be greater than min ({show(p['min'])})"))
    probs, values = p.get("probabilities"), p.get("values")
    if probs is not None and values is not None:
        if len(probs) != len(values):
            msg = f"has {len(probs)} entries, values has {len(values)}"
            issues.append((("probabilities",), msg))
        elif abs(math.fsum(probs) - 1.0) > 1e-8 + 1e-5:  # numpy.isclose, as W&B checks
            issues.append((("probabilities",), f"must sum to 1 (they sum to {math.fsum(probs):g})"))
    return issues


# ----------------------------------------------------------------------- per-key checks

FieldIssues = list[tuple[Loc, str]]


def _check_value(value: Any, dist: str) -> FieldIssues:
    problem = json_problem(value)
    return [((), problem)] if problem else []


def _check_values(values: Any, dist: str) -> FieldIssues:
    if not isinstance(values, list | tuple):
        return [((), f"must be a list (got {show(values)})")]
    if not values:
        return [((), "must list at least one value")]
    problems = ((i, json_problem(v)) for i, v in enumerate(values))
    return [((i,), p) for i, p in problems if p is not None]


def _check_probabilities(probs: Any, dist: str) -> FieldIssues:
    if not isinstance(probs, list | tuple) or not probs:
        return [((), f"must be a non-empty list of numbers (got {show(probs)})")]
    issues: FieldIssues = []
    for i, p in enumerate(probs):
        problem = number_problem(p) or (None if p >= 0 else "must be at least 0")
        if problem:
            issues.append(((i,), problem))
    return issues


def _check_bound(value: Any, dist: str, key: str) -> FieldIssues:
    problem = number_problem(value)
    if problem:
        return [((), problem)]
    if dist == "int_uniform" and type(value) is not int:
        return [((), f"must be an integer for int_uniform (got {show(value)})")]
    if dist in _POSITIVE_MIN and key == "min" and value <= 0:
        return [((), f"must be greater than 0 for {dist} (got {show(value)})")]
    if dist in EXPONENT_FORMS and abs(value) > _MAX_EXPONENT:
        return [((), f"is a natural-log exponent for {dist}: at most {_MAX_EXPONENT} in size")]
    return []


def _check_at_least(value: Any, floor: float, strict: bool) -> FieldIssues:
    problem = number_problem(value)
    if problem:
        return [((), problem)]
    if value < floor or (strict and value == floor):
        return [((), f"must be {'greater than' if strict else 'at least'} {floor:g}")]
    return []


def _check_range(r: Any, dist: str) -> FieldIssues:
    if not isinstance(r, Mapping):
        return [((), "must be a mapping {min, max, step}")]
    issues: FieldIssues = [((k,), "unknown key" + suggest(str(k), ("min", "max", "step")))
                           for k in r if k not in ("min", "max", "step")]
    for key in ("min", "max", "step"):
        problem = "required" if key not in r else number_problem(r[key])
        if problem:
            issues.append(((key,), problem))
    if issues:
        return issues
    if r["step"] <= 0:
        return [(("step",), "must be greater than 0")]
    if not r["min"] < r["max"]:
        return [(("max",), f"must be greater than min ({show(r['min'])}); max is excluded")]
    if range_count(r["min"], r["max"], r["step"]) > MAX_VALUES:
        return [((), f"yields more than {MAX_VALUES} values")]
    return []


_FIELD_CHECKS: dict[str, Any] = {
    "value": _check_value,
    "values": _check_values,
    "probabilities": _check_probabilities,
    "min": lambda v, d: _check_bound(v, d, "min"),
    "max": lambda v, d: _check_bound(v, d, "max"),
    "q": lambda v, d: _check_at_least(v, 0, strict=True),
    "mu": lambda v, d: [((), p)] if (p := number_problem(v)) else [],
    "sigma": lambda v, d: _check_at_least(v, 0, strict=False),
    "a": lambda v, d: _check_at_least(v, 0, strict=False),
    "b": lambda v, d: _check_at_least(v, 0, strict=False),
    "range": _check_range,
}
