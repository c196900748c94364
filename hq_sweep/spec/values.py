"""Value helpers shared by the spec and the search space: JSON checks, exact decimal steps.

Steps and quanta are applied in decimal arithmetic on the numbers as written (``repr`` of a
float is its shortest round-trip form), so ``0.1 + 2 * 0.1`` comes out as ``0.3``, not
``0.30000000000000004``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

Number = int | float

MAX_VALUES = 100_000  # a range or grid axis longer than this is almost certainly a typo


def is_number(value: Any) -> bool:
    """A JSON number: int or float, never bool (W&B's schema excludes booleans too)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_finite_number(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


def number_problem(value: Any) -> str | None:
    """Why ``value`` is not a finite number, or None."""
    if is_finite_number(value):
        return None
    if is_number(value):
        return "must be a finite number"
    hint = ""
    if isinstance(value, str) and "e" in value.lower():
        try:
            float(value)
            hint = "; YAML 1.1 reads a number like 1e-5 as text: write 1.0e-5"
        except ValueError:
            hint = ""
    shown = "null" if value is None else repr(value)
    return f"must be a number (got {shown[:60]}{hint})"


def json_problem(value: Any) -> str | None:
    """Why ``value`` cannot be stored as JSON (hq-sweep stores everything as JSON), or None."""
    if value is None or isinstance(value, bool | int | str):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else "must be JSON data (NaN and infinity are not)"
    if isinstance(value, list | tuple):
        return next((p for p in map(json_problem, value) if p is not None), None)
    if isinstance(value, Mapping):
        if not all(isinstance(k, str) for k in value):
            return "must be JSON data (mapping keys must be strings)"
        return next((p for p in map(json_problem, value.values()) if p is not None), None)
    return f"must be JSON data (got a {type(value).__name__})"


def as_json(value: Any) -> Any:
    """A deep copy in plain JSON containers: tuples become lists, mappings dicts."""
    if isinstance(value, list | tuple):
        return [as_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: as_json(v) for k, v in value.items()}
    return value


def canonical(value: Any) -> str:
    """A stable text key for a JSON value (1, 1.0 and true stay distinct, as in W&B's grid)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def same_value(a: Any, b: Any) -> bool:
    """Equal as sweep values: numbers by value (1 == 1.0), everything else by canonical JSON."""
    if is_number(a) and is_number(b):
        return bool(a == b)
    return canonical(a) == canonical(b)


def to_decimal(x: Number) -> Decimal:
    return Decimal(x) if isinstance(x, int) else Decimal(repr(float(x)))


def from_decimal(d: Decimal, as_int: bool) -> Number:
    return int(d) if as_int else float(d)


def range_count(lo: Number, hi: Number, step: Number) -> int:
    """How many of lo, lo+step, ... lie strictly below hi."""
    if hi <= lo:
        return 0
    return math.ceil((to_decimal(hi) - to_decimal(lo)) / to_decimal(step))


def decimal_range(lo: Number, hi: Number, step: Number) -> list[Number]:
    """lo, lo+step, ... strictly below hi, without float drift; ints when all three are ints."""
    as_int = all(type(x) is int for x in (lo, hi, step))
    d_lo, d_step = to_decimal(lo), to_decimal(step)
    return [from_decimal(d_lo + k * d_step, as_int) for k in range(range_count(lo, hi, step))]


def quantize(x: float, q: Number) -> Number:
    """W&B's ``round(x / q) * q`` (half to even, like numpy); an int when q is an int."""
    ratio = x / q
    if not math.isfinite(ratio):
        return x
    k = round(ratio)
    if isinstance(q, int):
        return k * q
    return float(Decimal(k) * to_decimal(q))
