"""The ``parameters:`` block of a sweep file, validated the way W&B's sweep engine does.

Source of the rules: wandb/sweeps ``src/sweeps/config/schema.json`` (one JSON-schema
definition per distribution, ``additionalProperties: false`` on each, defaults q=1.0, mu=0,
sigma=1, a=b=1, q > 0, sigma/a/b >= 0, min > 0 for the ``*_values`` log forms, names matching
``^[A-Za-z_][A-Za-z0-9_.-]*$``, at least one parameter per block), ``schema.py``
(``validate_min_max``: min must be strictly less than max; ``validate_categorical_prob``:
as many probabilities as values, summing to 1) and ``params.py`` (the first schema in the
``anyOf`` order that matches decides the distribution: int min/max -> int_uniform, any float
-> uniform, ``values`` -> categorical, ``values`` + ``probabilities`` ->
categorical_w_probabilities, ``value`` -> constant, ``parameters`` -> a nested group).

Additions: Argo's ``range: {min, max, step}`` (values min, min+step, ... strictly below max,
in decimal arithmetic; may be combined with ``values:``, which are appended, as Argo does) is
normalized to a categorical parameter.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from hq_sweep.spec.issues import Issue, Loc, fail_many, issues_from_validation_error, show
from hq_sweep.spec.param_rules import (
    CATEGORICAL,
    DISTRIBUTIONS,
    EXPONENT_FORMS,
    GRID_DISTRIBUTIONS,
    NAME_RE,
    check_leaf,
)
from hq_sweep.spec.values import (
    Number,
    canonical,
    decimal_range,
    is_finite_number,
    quantize,
    range_count,
    same_value,
)

__all__ = ["CATEGORICAL", "DISTRIBUTIONS", "EXPONENT_FORMS", "GRID_DISTRIBUTIONS", "ParamGroup",
           "ParamNode", "ParamSpec", "iter_leaves", "parse_tree", "tree_loc", "validate_tree"]


class ParamSpec(BaseModel):
    """One searchable (or constant) parameter, normalized: ``distribution`` always set,
    defaults filled, an Argo ``range`` already expanded into ``values``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    distribution: str
    value: Any = None
    values: list[Any] | None = None
    probabilities: list[float] | None = None
    min: int | float | None = None
    max: int | float | None = None
    q: int | float | None = None
    mu: int | float | None = None
    sigma: int | float | None = None
    a: int | float | None = None
    b: int | float | None = None

    @model_validator(mode="before")
    @classmethod
    def _check(cls, data: Any) -> Any:
        if isinstance(data, ParamSpec):
            return data
        cleaned, issues = check_leaf(data)
        if issues:
            fail_many(issues)
        return cleaned

    @property
    def is_constant(self) -> bool:
        return self.distribution == "constant"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"distribution": self.distribution}
        if self.is_constant:
            out["value"] = copy.deepcopy(self.value)
        for key in ("values", "probabilities", "min", "max", "q", "mu", "sigma", "a", "b"):
            if getattr(self, key) is not None:
                out[key] = copy.deepcopy(getattr(self, key))
        return out

    def grid_values(self) -> list[Any] | None:
        """The values W&B's grid search walks (duplicates dropped), or None when not finite."""
        if self.distribution in CATEGORICAL:
            return _unique(self.values or [])
        if self.distribution == "int_uniform":
            return list(range(int(self.min or 0), int(self.max or 0) + 1))
        if self.distribution == "q_uniform":  # np.arange(min, max, q): max excluded
            return _unique(decimal_range(_num(self.min), _num(self.max), _num(self.q)))
        if self.is_constant:
            return [copy.deepcopy(self.value)]
        return None

    def grid_count(self) -> int | None:
        """len(grid_values()) without building it."""
        if self.distribution == "int_uniform":
            return int(_num(self.max)) - int(_num(self.min)) + 1
        if self.distribution == "q_uniform":
            return range_count(_num(self.min), _num(self.max), _num(self.q))
        values = self.grid_values()
        return None if values is None else len(values)

    def value_problem(self, value: Any) -> str | None:
        """Why ``value`` is outside this parameter's domain (for priors), or None."""
        return value_problem(self, value)


class ParamGroup(BaseModel):
    """A nested block: a parameter whose spec is ``{parameters: {...}}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    parameters: dict[str, ParamSpec | ParamGroup]

    @field_validator("parameters", mode="before")
    @classmethod
    def _parse(cls, raw: Any) -> Any:
        return validate_tree(raw)


ParamNode = ParamSpec | ParamGroup


def _num(x: Number | None) -> Number:
    return 0 if x is None else x


def _unique(values: list[Any]) -> list[Any]:
    seen: set[str] = set()
    out = []
    for v in values:
        key = canonical(v)
        if key not in seen:
            seen.add(key)
            out.append(copy.deepcopy(v))
    return out


# ----------------------------------------------------------------------------- the tree


def parse_tree(raw: Any, loc: Loc = ()) -> tuple[dict[str, ParamNode], list[Issue], set[str]]:
    """Parse a ``parameters:`` block. Returns the valid part of the tree, the issues (locs
    relative to the block) and the names of top-level entries that had issues."""
    issues: list[Issue] = []
    broken: set[str] = set()
    if not isinstance(raw, Mapping):
        msg = f"must be a mapping of parameter names to specs (got {show(raw)})"
        return {}, [(loc, msg)], broken
    if not raw:
        return {}, [(loc, "must declare at least one parameter")], broken
    tree: dict[str, ParamNode] = {}
    for name, node in raw.items():
        before = len(issues)
        parsed = _parse_node(name, node, (*loc, str(name)), issues)
        if len(issues) > before or parsed is None:
            broken.add(str(name))
        else:
            tree[name] = parsed
    return tree, issues, broken


def _parse_node(name: Any, node: Any, loc: Loc, issues: list[Issue]) -> ParamNode | None:
    if not isinstance(name, str) or not NAME_RE.match(name):
        issues.append((loc, "invalid parameter name: use letters, digits, '_', '.', '-', "
                            "starting with a letter or '_'"))
        return None
    if isinstance(node, Mapping) and "parameters" in node:
        issues.extend(((*loc, str(k)), "not allowed next to parameters")
                      for k in node if k != "parameters")
        children, sub_issues, _ = parse_tree(node["parameters"], (*loc, "parameters"))
        issues.extend(sub_issues)
        return ParamGroup.model_construct(parameters=children)
    try:
        return ParamSpec.model_validate(node)
    except ValidationError as exc:
        found, _ = issues_from_validation_error(exc)
        issues.extend(((*loc, *sub), msg) for sub, msg in found)
        return None


def validate_tree(raw: Any) -> dict[str, ParamNode]:
    """A field validator body: parse a block, or raise every issue found in it at once."""
    if isinstance(raw, Mapping) and raw and all(isinstance(v, ParamSpec | ParamGroup)
                                                for v in raw.values()):
        return dict(raw)
    tree, issues, _ = parse_tree(raw)
    issues += name_collisions(tree)
    if issues:
        fail_many(issues)
    return tree


def iter_leaves(tree: Mapping[str, ParamNode], prefix: tuple[str, ...] = ()
                ) -> Iterator[tuple[tuple[str, ...], ParamSpec]]:
    """Leaves in W&B's order: keys sorted at each level, groups expanded in place."""
    for key in sorted(tree):
        node = tree[key]
        if isinstance(node, ParamGroup):
            yield from iter_leaves(node.parameters, (*prefix, key))
        else:
            yield (*prefix, key), node


def tree_loc(path: tuple[str, ...]) -> Loc:
    """The sweep-file location of a leaf: ("model", "depth") -> model.parameters.depth."""
    loc: list[str] = []
    for i, part in enumerate(path):
        loc += [part] if i == 0 else ["parameters", part]
    return tuple(loc)


def name_collisions(tree: Mapping[str, ParamNode]) -> list[Issue]:
    """A dotted name like ``model.depth`` must not also be a nested parameter."""
    seen: dict[str, tuple[str, ...]] = {}
    issues: list[Issue] = []
    for path, _ in iter_leaves(tree):
        flat = ".".join(path)
        if flat in seen:
            other = ".".join(str(p) for p in ("parameters", *tree_loc(seen[flat])))
            issues.append((tree_loc(path), f"its flat name '{flat}' is also {other}"))
        seen[flat] = path
    return issues


# ---------------------------------------------------------------------- domain (priors)


def support(p: ParamSpec) -> tuple[float, float]:
    """Smallest and largest value a numeric parameter can take."""
    d, lo, hi = p.distribution, float(_num(p.min)), float(_num(p.max))
    if d == "log_uniform" or d == "q_log_uniform":
        lo, hi = math.exp(lo), math.exp(hi)
    elif d == "inv_log_uniform":
        lo, hi = math.exp(-hi), math.exp(-lo)
    elif d in ("normal", "q_normal"):
        lo, hi = -math.inf, math.inf
    elif d in ("log_normal", "q_log_normal"):
        lo, hi = 0.0, math.inf
    elif d in ("beta", "q_beta"):
        lo, hi = 0.0, 1.0
    if p.q is not None and math.isfinite(hi):
        lo, hi = min(lo, float(quantize(lo, p.q))), max(hi, float(quantize(hi, p.q)))
    return lo, hi


def value_problem(p: ParamSpec, value: Any) -> str | None:
    if p.is_constant:
        return None if same_value(value, p.value) else f"must equal the constant {show(p.value)}"
    if p.distribution in CATEGORICAL:
        if any(same_value(value, v) for v in p.values or []):
            return None
        return f"must be one of the values {show(p.values)} (got {show(value)})"
    if not is_finite_number(value):
        return f"must be a number (got {show(value)})"
    if p.distribution == "int_uniform" and type(value) is not int:
        return f"must be an integer (got {show(value)})"
    lo, hi = support(p)
    tol = 1e-9 * max([1.0] + [abs(x) for x in (lo, hi) if math.isfinite(x)])
    if value < lo - tol or value > hi + tol:
        return f"{show(value)} is outside [{lo:g}, {hi:g}]"
    return None


def nest(paths: Mapping[str, tuple[str, ...]], flat: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted flat names -> nested dicts following `paths` (a name's keys through the nesting;
    a literal dotted name such as ``"a.b"`` declared at the top stays one key, as in W&B)."""
    out: dict[str, Any] = {}
    for name, value in flat.items():
        path = paths.get(name, (name,))
        node = out
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ValueError(f"cannot nest {name!r}: {part!r} already holds a value")
        node[path[-1]] = value
    return out
