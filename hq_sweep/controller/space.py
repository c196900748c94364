"""The search space: a :class:`~hq_sweep.spec.sweep.SweepSpec`'s parameters as Optuna distributions.

A trial lives in two coordinates. The *latent* value is what Optuna samples and stores, over
``SearchSpace.distributions``; the *user* value is what the objective receives
(``SearchSpace.to_params``). For most W&B distributions the two coincide:

====================================  ==============================================
categorical (JSON scalars)            CategoricalDistribution(values)
categorical (lists, dicts, 1 vs 1.0)  CategoricalDistribution(indexes) -> values[i]
int_uniform / uniform                 IntDistribution / FloatDistribution(min, max)
log_uniform_values                    FloatDistribution(min, max, log=True)
log_uniform (exponents)               FloatDistribution(e^min, e^max, log=True)
inv_log_uniform(_values)              the same log-uniform law (W&B's ppf is
                                      exp(-U(-log max, -log min))), over its bounds
q_uniform                             Int/FloatDistribution(step=q) when min and max
                                      are multiples of q, else an integer k -> k*q
q_log_uniform(_values)                log FloatDistribution, then round(x/q)*q
normal, log_normal, beta (+ q_)       latent FloatDistribution(0, 1) clipped to
                                      [1e-12, 1-1e-12], through the inverse CDF
====================================  ==============================================

Quantization is W&B's ``round(x/q)*q`` in decimal arithmetic (ints when q is an int). With
method/sampler grid every searched parameter becomes a CategoricalDistribution over its grid
values, so grid points map to latents exactly. Categorical ``probabilities`` are honoured by
the random sampler only (TPE & co. treat values as equally likely).
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from statistics import NormalDist
from typing import Any

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from hq_sweep.spec.issues import show
from hq_sweep.spec.param_tree import ParamGroup, ParamNode, ParamSpec, nest
from hq_sweep.spec.summary import summary_lines
from hq_sweep.spec.sweep import SweepSpec
from hq_sweep.spec.values import Number, quantize, same_value, to_decimal

__all__ = ["Axis", "SearchSpace", "build_space", "summary_lines"]

_EPS = 1e-12
_MAX_EXP = 709.0
Transform = Callable[[Any], Any]


@dataclass(frozen=True)
class Axis:
    """One flat parameter: its latent distribution (None for a constant) and the two maps."""

    name: str
    path: tuple[str, ...]
    spec: ParamSpec
    distribution: BaseDistribution | None
    forward: Transform
    inverse: Transform


class SearchSpace:
    """Flat dotted names ("model.depth") -> Optuna distributions over latent values, plus the
    constants, the maps between latent and user values, and the grid."""

    def __init__(self, axes: Sequence[Axis], tree: Mapping[str, ParamNode]) -> None:
        self.axes = list(axes)
        self._by_name = {a.name: a for a in self.axes}
        self._tree = tree
        self.paths = {a.name: a.path for a in self.axes}
        self.distributions: dict[str, BaseDistribution] = {
            a.name: a.distribution for a in self.axes if a.distribution is not None}
        self.constants: dict[str, Any] = {
            a.name: copy.deepcopy(a.spec.value) for a in self.axes if a.distribution is None}
        self.weights: dict[str, list[float]] = {
            a.name: list(a.spec.probabilities) for a in self.axes
            if a.spec.probabilities is not None and a.distribution is not None}
        self._grid_values: list[list[Any]] | None = None

    def to_params(self, latent: Mapping[str, Any]) -> dict[str, Any]:
        """Latent values (as Optuna sampled them) -> flat user values, constants included."""
        out: dict[str, Any] = {}
        for a in self.axes:
            if a.distribution is None:
                out[a.name] = copy.deepcopy(self.constants[a.name])
            elif a.name in latent:
                out[a.name] = a.forward(latent[a.name])
        return out

    def to_latent(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """Flat user values -> latent values (exact for categorical/int/float, nearest for
        quantized and transformed ones). Constants and unknown names are left out."""
        return {name: self._by_name[name].inverse(value) for name, value in params.items()
                if name in self.distributions}

    def nest(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """Dotted flat names -> nested dicts following the spec's nesting (a literal dotted
        name such as ``"a.b"`` declared at the top stays one key, as in W&B)."""
        return nest(self.paths, flat)

    def flatten(self, nested: Mapping[str, Any]) -> dict[str, Any]:
        """Nested dicts (or dotted names, or a mix) -> dotted flat names. Values of leaf
        parameters are kept whole, even when they are dicts."""
        out: dict[str, Any] = {}
        _flatten_into(self._tree, nested, (), out)
        return out

    def grid(self) -> list[dict[str, Any]] | None:
        """Every combination as flat user params, in W&B's order (parameters sorted by name,
        the last one varying fastest), or None when some parameter is not finite."""
        values = self._axis_values()
        if values is None:
            return None
        searched = [a for a in self.axes if a.distribution is not None]
        return [self._point(searched, combo) for combo in itertools.product(*values)]

    def grid_size(self) -> int | None:
        counts = [a.spec.grid_count() for a in self.axes if a.distribution is not None]
        if any(c is None for c in counts):
            return None
        return math.prod(c for c in counts if c is not None)

    def grid_point(self, index: int) -> dict[str, Any]:
        """``grid()[index]`` without building the whole grid."""
        values, size = self._axis_values(), self.grid_size()
        if values is None or size is None:
            raise ValueError("the search space is not finite")
        if not 0 <= index < size:
            raise IndexError(f"grid index {index} out of range (size {size})")
        combo: list[Any] = []
        for axis_values in reversed(values):
            index, i = divmod(index, len(axis_values))
            combo.append(axis_values[i])
        searched = [a for a in self.axes if a.distribution is not None]
        return self._point(searched, list(reversed(combo)))

    def _axis_values(self) -> list[list[Any]] | None:
        if self._grid_values is None:
            found = [a.spec.grid_values() for a in self.axes if a.distribution is not None]
            if any(v is None for v in found):
                return None
            self._grid_values = [v for v in found if v is not None]
        return self._grid_values

    def _point(self, searched: list[Axis], combo: Sequence[Any]) -> dict[str, Any]:
        chosen = {a.name: v for a, v in zip(searched, combo, strict=True)}
        return {a.name: copy.deepcopy(chosen[a.name] if a.distribution is not None
                                      else self.constants[a.name]) for a in self.axes}


def _flatten_into(tree: Mapping[str, ParamNode] | None, given: Mapping[str, Any],
                  prefix: tuple[str, ...], out: dict[str, Any]) -> None:
    for key, value in given.items():
        path = (*prefix, str(key))
        node = tree.get(str(key)) if tree is not None else None
        if isinstance(node, ParamGroup) and isinstance(value, Mapping):
            _flatten_into(node.parameters, value, path, out)
        else:
            out[".".join(path)] = value


# ---------------------------------------------------------------------------- the axes


def build_space(spec: SweepSpec) -> SearchSpace:
    """The search space of a spec (see the module docstring for the mapping)."""
    leaves = spec.flat_parameters()
    axes = [_axis(name, path, leaves[name], spec.is_grid)
            for name, path in spec.parameter_paths().items()]
    return SearchSpace(axes, spec.parameters)


def _axis(name: str, path: tuple[str, ...], p: ParamSpec, grid_mode: bool) -> Axis:
    if p.is_constant:
        return Axis(name, path, p, None, lambda _: copy.deepcopy(p.value), lambda v: v)
    if grid_mode and p.distribution in ("q_uniform", "int_uniform"):
        dist, fwd, inv = _categorical(p.grid_values() or [], name)
    else:
        dist, fwd, inv = _BUILDERS[p.distribution](p, name)
    return Axis(name, path, p, dist, fwd, inv)


Built = tuple[BaseDistribution, Transform, Transform]


def _categorical(values: list[Any], name: str) -> Built:
    def find(value: Any) -> int:
        for i, candidate in enumerate(values):
            if same_value(candidate, value):
                return i
        raise ValueError(f"{name}: {show(value)} is not one of its values")

    scalars = all(v is None or isinstance(v, bool | int | float | str) for v in values)
    if scalars and len(set(values)) == len(values):  # Optuna compares choices with ==
        return CategoricalDistribution(values), lambda v: v, lambda v: values[find(v)]
    indexes = CategoricalDistribution(list(range(len(values))))
    return indexes, lambda i: copy.deepcopy(values[int(i)]), find


def _clipper(lo: Number, hi: Number, cast: Callable[[Any], Number]) -> Transform:
    return lambda v: min(max(cast(v), lo), hi)


def _bounded(p: ParamSpec, lo: float, hi: float, log: bool) -> Built:
    dist = FloatDistribution(lo, hi, log=log)
    q = p.q
    fwd: Transform = (lambda v: quantize(float(v), q)) if q is not None else float
    return dist, fwd, _clipper(lo, hi, float)


def _numeric(p: ParamSpec, name: str) -> Built:
    lo, hi, d = float(p.min or 0), float(p.max or 0), p.distribution
    if d == "int_uniform":
        ilo, ihi = int(p.min or 0), int(p.max or 0)
        return IntDistribution(ilo, ihi), int, _clipper(ilo, ihi, lambda v: round(float(v)))
    if d in ("log_uniform", "q_log_uniform"):
        return _bounded(p, math.exp(lo), math.exp(hi), log=True)
    if d == "inv_log_uniform":
        return _bounded(p, math.exp(-hi), math.exp(-lo), log=True)
    return _bounded(p, lo, hi, log=d != "uniform")


def _multiple(x: Number, q: Number) -> bool:
    return (to_decimal(x) / to_decimal(q)) % 1 == 0


def _q_uniform(p: ParamSpec, name: str) -> Built:
    lo, hi, q = p.min or 0, p.max or 0, p.q or 1

    def snap(v: Any) -> Number:  # min and max are multiples of q here: clip, then round
        return quantize(min(max(float(v), float(lo)), float(hi)), q)

    if type(q) is int and type(lo) is int and type(hi) is int and lo % q == 0 and hi % q == 0:
        return IntDistribution(lo, hi, step=q), int, snap
    if _multiple(lo, q) and _multiple(hi, q):
        return FloatDistribution(float(lo), float(hi), step=float(q)), snap, snap
    k_lo, k_hi = round(lo / q), round(hi / q)

    def times(k: Any) -> Number:
        return int(k) * q if isinstance(q, int) else float(Decimal(int(k)) * to_decimal(q))

    return IntDistribution(k_lo, k_hi), times, _clipper(k_lo, k_hi, lambda v: round(float(v) / q))


def _open(u: Any) -> float:
    return min(max(float(u), _EPS), 1.0 - _EPS)


def _through_cdf(p: ParamSpec, ppf: Callable[[float], float],
                 cdf: Callable[[float], float]) -> Built:
    q = p.q

    def forward(u: Any) -> Number:
        x = ppf(_open(u))
        return quantize(x, q) if q is not None else x

    return FloatDistribution(0.0, 1.0), forward, lambda v: _open(cdf(float(v)))


def _normal(p: ParamSpec, name: str) -> Built:
    mu, sigma = float(p.mu or 0), float(p.sigma if p.sigma is not None else 1)
    if sigma <= 0:  # W&B accepts sigma 0; the law is then the constant mu
        return _through_cdf(p, lambda u: mu, lambda v: 0.5)
    law = NormalDist(mu, sigma)
    if p.distribution in ("normal", "q_normal"):
        return _through_cdf(p, law.inv_cdf, law.cdf)
    return _through_cdf(p, lambda u: math.exp(min(law.inv_cdf(u), _MAX_EXP)),
                        lambda v: law.cdf(math.log(v)) if v > 0 else 0.0)


def _beta(p: ParamSpec, name: str) -> Built:
    from scipy.stats import beta  # only spaces with a beta parameter pay for the import

    a, b = float(p.a if p.a is not None else 1), float(p.b if p.b is not None else 1)
    if a <= 0 or b <= 0:  # W&B accepts 0; the law is then a point mass at 0 (a=0) or 1
        point = 0.0 if a <= 0 else 1.0
        return _through_cdf(p, lambda u: point, lambda v: 0.5)
    return _through_cdf(p, lambda u: float(beta.ppf(u, a, b)), lambda v: float(beta.cdf(v, a, b)))


_BUILDERS: dict[str, Callable[[ParamSpec, str], Built]] = {
    "categorical": lambda p, name: _categorical(p.values or [], name),
    "categorical_w_probabilities": lambda p, name: _categorical(p.values or [], name),
    "int_uniform": _numeric, "uniform": _numeric, "log_uniform": _numeric,
    "log_uniform_values": _numeric, "inv_log_uniform": _numeric,
    "inv_log_uniform_values": _numeric, "q_log_uniform": _numeric,
    "q_log_uniform_values": _numeric, "q_uniform": _q_uniform,
    "normal": _normal, "q_normal": _normal, "log_normal": _normal, "q_log_normal": _normal,
    "beta": _beta, "q_beta": _beta,
}
