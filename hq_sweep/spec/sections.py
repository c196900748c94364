"""The smaller sections of a sweep file: metric, early_terminate, worker, sampler, pruner,
and the strict JSON-schema scalar types W&B's schema uses (no "5" for 5, no true for 1).

W&B sources: wandb/sweeps ``src/sweeps/config/schema.json`` (``metric``: name required,
goal minimize|maximize default minimize, target number, impute, impute_while_running, no
other keys; ``hyperband_stopping``: type hyperband, either max_iter and s or min_iter >= 1,
eta > 1 default 3, strict default true, no other keys) and ``hyperband_stopping.py`` (how
max_iter/s/eta and min_iter/eta become milestones).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, PlainValidator, field_validator, model_validator

from hq_sweep.spec.issues import Issue, fail, fail_many, show, suggest
from hq_sweep.spec.values import Number, is_number, json_problem, number_problem

# ------------------------------------------------------------------ strict scalar types


def _string(value: Any) -> str:
    if not isinstance(value, str):
        fail(f"must be a string (got {show(value)})")
    return value


def _integer(value: Any) -> int:
    """A JSON-schema integer: 3 and 3.0 count, true and "3" do not."""
    if not is_number(value) or (isinstance(value, float) and not value.is_integer()):
        fail(f"must be an integer (got {show(value)})")
    return int(value)


def _at_least(floor: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        number = _integer(value)
        if number < floor:
            fail(f"must be at least {floor} (got {show(value)})")
        return number

    return check


def _number(value: Any) -> Number:
    problem = number_problem(value)
    if problem:
        fail(problem)
    return value  # type: ignore[no-any-return]


def _positive(value: Any) -> float:
    if _number(value) <= 0:
        fail(f"must be greater than 0 (got {show(value)})")
    return float(value)


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        fail(f"must be true or false (got {show(value)})")
    return value


def one_of(*choices: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            hint = suggest(value, choices) if isinstance(value, str) else ""
            fail(f"must be one of {', '.join(choices)} (got {show(value)}){hint}")
        return value

    return check


def _options(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        fail(f"must be a mapping of option names to values (got {show(value)})")
    problem = json_problem(dict(value))
    if problem:
        fail(problem)
    return dict(value)


WStr = Annotated[str, PlainValidator(_string)]
WInt = Annotated[int, PlainValidator(_integer)]
PosInt = Annotated[int, PlainValidator(_at_least(1))]
NonNegInt = Annotated[int, PlainValidator(_at_least(0))]
WNum = Annotated[int | float, PlainValidator(_number)]
PosFloat = Annotated[float, PlainValidator(_positive)]
WBool = Annotated[bool, PlainValidator(_boolean)]
Options = Annotated[dict[str, Any], PlainValidator(_options)]
Goal = Annotated[Literal["minimize", "maximize"], PlainValidator(one_of("minimize", "maximize"))]

_FROZEN = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------------------ metric


class Metric(BaseModel):
    """What a trial is judged by. ``goal`` defaults to minimize, as in W&B."""

    model_config = _FROZEN

    name: WStr
    goal: Goal = "minimize"
    target: WNum | None = None
    impute: Annotated[str, PlainValidator(one_of("latest", "best", "worst"))] | None = None
    impute_while_running: (
        Annotated[str, PlainValidator(one_of("latest", "best", "worst", "false"))] | None
    ) = None

    @property
    def maximize(self) -> bool:
        return self.goal == "maximize"


# --------------------------------------------------------------------- early_terminate


def _whole(value: Any) -> int:
    if is_number(value) and not float(value).is_integer():
        fail(f"must be a whole number (got {show(value)})")
    return _integer(value)


def _eta(value: Any) -> Number:
    if _number(value) <= 1:
        fail(f"must be greater than 1 (got {show(value)})")
    return value  # type: ignore[no-any-return]


class EarlyTerminate(BaseModel):
    """W&B's ``early_terminate: {type: hyperband, ...}``: kept as data; it is not an Optuna
    pruner (the controller implements W&B's milestone rule from :meth:`milestones`)."""

    model_config = _FROZEN

    type: Annotated[Literal["hyperband"], PlainValidator(one_of("hyperband"))]
    min_iter: Annotated[int, PlainValidator(_at_least(1))] | None = None
    max_iter: WInt | None = None
    s: Annotated[int, PlainValidator(_whole)] | None = None
    eta: Annotated[int | float, PlainValidator(_eta)] = 3
    strict: WBool = True

    @model_validator(mode="after")
    def _shape(self) -> EarlyTerminate:
        issues: list[Issue] = []
        if self.max_iter is None and self.min_iter is None:
            issues.append(((), "needs min_iter, or max_iter and s"))
        elif self.max_iter is not None and self.s is None:
            issues.append((("s",), "required with max_iter"))
        elif not self.milestones():
            msg = f"max_iter {self.max_iter}, eta {self.eta} and s {self.s} give no milestone >= 1"
            issues.append(((), msg))
        if issues:
            fail_many(issues)
        return self

    def milestones(self) -> list[int]:
        """Steps at which runs are compared, exactly as W&B's hyperband_stopping computes them
        (max_iter/eta^k for k = 1..s, dropping those below 1; or min_iter*eta^k, 100 of them)."""
        bands: list[int] = []
        if self.max_iter is not None:
            band: float = self.max_iter
            for _ in range(self.s or 0):
                band /= self.eta
                if band < 1:
                    break
                bands.append(int(band))
            return sorted(bands)
        band = self.min_iter or 1
        for _ in range(100):
            if band == math.inf:  # W&B's loop raises OverflowError; no run reaches such a step
                break
            bands.append(int(band))
            band *= self.eta
        return bands


# ------------------------------------------------------------------------------ worker


class WorkerEntry(BaseModel):
    """Where the user's code lives: ``module`` is a ``.py`` file path or a dotted module name;
    ``setup`` runs once per worker, ``objective`` once per trial. ``presample`` is when the
    controller samples define-by-run parameters ahead, as it asks the trial (no round trip
    per suggest): ``auto`` while trials are short (round trips would cost them dearly),
    ``always``, or ``never`` (each is sampled when the objective asks: with one worker and a
    seed, Optuna's own sequence)."""

    model_config = _FROZEN

    module: str
    setup: str = "setup"
    objective: str = "objective"
    presample: Annotated[str, PlainValidator(one_of("auto", "always", "never"))] = "auto"

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, data: Any) -> Any:
        if not isinstance(data, str):
            return data
        module, sep, func = data.rpartition(":")
        if sep and func.isidentifier() and module:
            return {"module": module, "objective": func}
        return {"module": data}

    @field_validator("module", mode="before")
    @classmethod
    def _module(cls, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            fail("must be a file path such as workers/train.py or a module name "
                 f"(got {show(value)})")
        return value.strip()

    @field_validator("setup", "objective", mode="before")
    @classmethod
    def _function(cls, value: Any) -> str:
        if not isinstance(value, str) or not value.isidentifier():
            fail(f"must be a Python function name (got {show(value)})")
        return value

    @property
    def is_file(self) -> bool:
        return self.module.endswith(".py")


# -------------------------------------------------------------------- sampler and pruner

SAMPLER_NAMES = ("random", "grid", "tpe", "gp", "cmaes", "qmc", "nsgaii", "bruteforce")
PRUNER_NAMES = ("median", "percentile", "successive_halving", "hyperband", "threshold",
                "patient", "wilcoxon", "nop")
_EXTRA_NAMES = {"nsga2": "nsgaii", "asha": "successive_halving", "sha": "successive_halving",
                "none": "nop"}


def _squash(name: str) -> str:
    return name.lower().replace("_", "").replace("-", "").replace(" ", "")


def _named(choices: tuple[str, ...], suffix: str) -> Callable[[Any], str]:
    """Accept a canonical name, an alias or the Optuna class name, in any case."""
    table = {_squash(c): c for c in choices} | {_squash(c) + suffix: c for c in choices}
    table |= {k: v for k, v in _EXTRA_NAMES.items() if v in choices}

    def check(value: Any) -> str:
        found = table.get(_squash(value)) if isinstance(value, str) else None
        if found is None:
            hint = suggest(value, choices) if isinstance(value, str) else ""
            fail(f"must be one of {', '.join(choices)} (got {show(value)}){hint}")
        return found

    return check


def _name_only(data: Any) -> Any:
    return {"name": data} if isinstance(data, str) else data


class SamplerSpec(BaseModel):
    """``sampler: tpe`` or ``sampler: {name: tpe, seed: 1, options: {n_startup_trials: 20}}``;
    options are passed to the Optuna sampler's constructor."""

    model_config = _FROZEN

    name: Annotated[str, PlainValidator(_named(SAMPLER_NAMES, "sampler"))]
    seed: WInt | None = None
    options: Options = {}

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data: Any) -> Any:
        return _name_only(data)


class PrunerSpec(BaseModel):
    """``pruner: median`` or ``pruner: {name: percentile, options: {percentile: 25}}``."""

    model_config = _FROZEN

    name: Annotated[str, PlainValidator(_named(PRUNER_NAMES, "pruner"))]
    options: Options = {}

    @model_validator(mode="before")
    @classmethod
    def _short(cls, data: Any) -> Any:
        return _name_only(data)


# ------------------------------------------------------------- W&B's loosely typed blocks


def controller_block(value: Any) -> dict[str, Any]:
    """W&B ``controller``: a mapping whose ``type`` is local or cloud; other keys allowed."""
    if not isinstance(value, Mapping):
        fail(f"must be a mapping such as {{type: local}} (got {show(value)})")
    if "type" not in value:
        fail_many([(("type",), "required (local or cloud)")])
    if value["type"] not in ("local", "cloud"):
        fail_many([(("type",), f"must be one of local, cloud (got {show(value['type'])})")])
    return dict(value)


def scheduler_block(value: Any) -> dict[str, Any]:
    """W&B's newer ``scheduler``: only ``engine: wandb`` (the built-in methods) is meaningful
    here; hq-sweep is itself an Optuna scheduler, chosen with ``sampler:``."""
    if not isinstance(value, Mapping):
        fail(f"must be a mapping such as {{engine: wandb}} (got {show(value)})")
    allowed = ("engine", "source", "optimizer", "search_space")
    issues: list[Issue] = [((k,), "unknown key") for k in value if k not in allowed]
    issues += [((k,), f"must be a string (got {show(value[k])})")
               for k in allowed if k in value and not isinstance(value[k], str)]
    engine = value.get("engine")
    if engine is None:
        issues.append((("engine",), "required"))
    elif engine != "wandb":
        issues.append((("engine",), f"{show(engine)} schedulers are not run by hq-sweep: "
                                    "choose an Optuna sampler with sampler: instead"))
    if issues:
        fail_many(issues)
    return dict(value)
