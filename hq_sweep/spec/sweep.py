"""The sweep file: W&B Sweeps YAML, Argo's hyperparameter additions, hq-sweep's own keys.

Use :func:`load_spec` (a file) or :func:`parse_spec` (already-parsed data); both return a
frozen :class:`SweepSpec` or raise :class:`SpecError` listing *every* problem, one line each,
named by path (``parameters.lr.max: must be greater than min (0.1)``). No Optuna here.

Faithful to W&B's sweep engine (wandb/sweeps, ``src/sweeps/config/schema.json`` and friends;
see param_tree.py / sections.py / cross_checks.py for the rule-by-rule sources):
``method`` and ``parameters`` required; unknown top-level keys refused
(``additionalProperties: false``) except hq-sweep's own; strict JSON types (``"5"`` is not a
number, and PyYAML, like W&B's loader, reads ``1e-5`` as text).

Decisions:

* ``metrics: [{name, goal}, ...]`` declares a multi-objective sweep. It excludes ``metric``
  (as W&B's own ``metrics`` key does). :meth:`SweepSpec.objectives` returns ``metrics``, else
  ``[metric]``, else ``[Metric(name="value", goal="minimize")]``: a sweep without a metric is
  valid for random and grid, and the number the objective returns is then the value
  minimized. ``spec.metric is None and spec.metrics is None`` tells the implicit case.
* Without ``sampler:`` the method picks it: random -> random, grid -> grid, bayes -> tpe.
  TPE rather than GP because it handles categorical and nested spaces natively, scales to
  thousands of trials and needs no PyTorch.
* ``hyperparams:`` and ``algorithm:`` (Argo) are aliases of ``parameters:`` and
  ``method:``; ``algorithm`` also takes bayesian and tpe (-> bayes). Errors name the key as
  written.
* W&B's ``log_uniform``, ``inv_log_uniform`` and ``q_log_uniform`` (min/max are natural-log
  exponents) are accepted; W&B warns about them, and so does :meth:`SweepSpec.warnings`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hq_sweep.errors import HqSweepError
from hq_sweep.spec.cross_checks import cross_issues, flatten_prior
from hq_sweep.spec.issues import (
    CROSS_ERROR,
    Issue,
    SpecError,
    fail,
    fail_many,
    issue_line,
    issues_from_validation_error,
    nesting_depth,
    non_string_keys,
    show,
)
from hq_sweep.spec.param_tree import (
    EXPONENT_FORMS,
    ParamGroup,
    ParamSpec,
    iter_leaves,
    nest,
    parse_tree,
    tree_loc,
    validate_tree,
)
from hq_sweep.spec.reading import load_yaml
from hq_sweep.spec.sections import (
    EarlyTerminate,
    Metric,
    NonNegInt,
    PosFloat,
    PosInt,
    PrunerSpec,
    SamplerSpec,
    WInt,
    WorkerEntry,
    WStr,
    controller_block,
    one_of,
    scheduler_block,
)

__all__ = [
    "DEFAULT_METRIC_NAME",
    "EarlyTerminate",
    "Metric",
    "ParamGroup",
    "ParamSpec",
    "PrunerSpec",
    "SamplerSpec",
    "SpecError",
    "StoredSpecError",
    "SweepSpec",
    "WorkerEntry",
    "load_spec",
    "parse_spec",
    "parse_stored_spec",
]

DEFAULT_METRIC_NAME = "value"
METHODS = ("grid", "random", "bayes")
DEFAULT_SAMPLERS = {"random": "random", "grid": "grid", "bayes": "tpe"}
_ALIASES = {"hyperparams": "parameters", "algorithm": "method"}
_DEFINE_BY_RUN = object()  # `parameters:` left out of a sweep whose worker defines them
_ALGORITHMS = {"bayesian": "bayes", "tpe": "bayes"}
MAX_DEPTH = 100  # levels of mappings and lists a sweep may nest
_NOT_NULL = ("method", "parameters", "metric", "metrics", "early_terminate", "name",
             "description", "program", "command", "entity", "project", "run_cap", "api_version",
             "kind", "controller", "scheduler", "job", "image_uri", "retries")


def _method(value: Any) -> str:
    if value == "custom":
        fail("'custom' needs a W&B scheduler engine, which hq-sweep does not run: use grid, "
             "random or bayes (and sampler: for another Optuna sampler)")
    return one_of(*METHODS)(value)


def _command(value: Any) -> list[str]:
    if not isinstance(value, list):
        fail(f"must be a list of strings (got {show(value)})")
    bad = [(i,) for i, item in enumerate(value) if not isinstance(item, str | int | float)]
    if bad:
        fail_many([(loc, "must be a string") for loc in bad])
    return [str(item) for item in value]  # W&B's agent runs str() of each item: True, 42


def _priors(value: Any) -> list[Any]:
    """A list; its items are checked with the parameters (cross_checks), so that a bad item
    does not hide the problems of the others."""
    if value is None:
        return []
    if not isinstance(value, list):
        fail(f"must be a list of mappings from parameter names to values (got {show(value)})")
    return [dict(item) if isinstance(item, Mapping) else item for item in value]


class SweepSpec(BaseModel):
    """A validated sweep file. Build it with :func:`parse_spec` or :func:`load_spec`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # W&B keys (apiVersion, kind, controller, job, image_uri, scheduler: accepted, unused)
    method: Annotated[Literal["grid", "random", "bayes"], PlainValidator(_method)]
    parameters: dict[str, ParamSpec | ParamGroup]
    metric: Metric | None = None
    metrics: list[Metric] | None = None
    early_terminate: EarlyTerminate | None = None
    name: WStr | None = None
    description: WStr | None = None
    program: WStr | None = None
    command: Annotated[list[str], PlainValidator(_command)] | None = None
    entity: WStr | None = None
    project: WStr | None = None
    run_cap: PosInt | None = None
    api_version: WStr | None = Field(default=None, alias="apiVersion")
    kind: Annotated[str, PlainValidator(one_of("sweep"))] | None = None
    controller: Annotated[dict[str, Any], PlainValidator(controller_block)] | None = None
    scheduler: Annotated[dict[str, Any], PlainValidator(scheduler_block)] | None = None
    job: WStr | None = None
    image_uri: WStr | None = None
    # hq-sweep keys
    worker: WorkerEntry | None = None
    sampler: SamplerSpec | None = None
    pruner: PrunerSpec | None = None
    retries: NonNegInt = 2
    trial_timeout: PosFloat | None = None
    lease: PosFloat = 20.0
    """Seconds a running trial stays leased without a heartbeat before it is requeued."""
    max_trials_per_worker: PosInt | None = None
    max_worker_memory_mb: PosFloat | None = None
    parallelism: PosInt | None = None
    seed: WInt | None = None
    priors: Annotated[list[dict[str, Any]], PlainValidator(_priors)] = Field(default_factory=list)
    """Configurations to run first: parameter names (nested or dotted) -> values."""

    @field_validator(*_NOT_NULL, mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            fail("must not be empty (null)")
        return value

    @model_validator(mode="before")
    @classmethod
    def _define_by_run(cls, data: Any) -> Any:
        """A sweep with a Python `worker:` may leave `parameters:` out (or empty): its
        objective's `trial.suggest_*` define the space by running, as in Optuna. Without
        `method:` it is Optuna's default, TPE (`bayes`); without `metric:`/`metrics:` it
        minimizes the returned value, as `optuna.create_study()` does."""
        if not isinstance(data, Mapping) or data.get("worker") is None:
            return data
        data = dict(data)
        if data.get("parameters", {}) == {}:
            data["parameters"] = _DEFINE_BY_RUN
        if "method" not in data:
            data["method"] = "bayes"
            if "metric" not in data and "metrics" not in data:
                data["metric"] = {"name": "value", "goal": "minimize"}
        return data

    @field_validator("parameters", mode="before")
    @classmethod
    def _parameters(cls, raw: Any, info: ValidationInfo) -> Any:
        if raw is _DEFINE_BY_RUN or (raw == {} and (info.context or {}).get("partial")):
            return {}
        return validate_tree(raw)

    @model_validator(mode="after")
    def _cross(self, info: ValidationInfo) -> SweepSpec:
        issues = cross_issues(self, (info.context or {}).get("broken", frozenset()))
        if issues:
            fail_many(issues, kind=CROSS_ERROR)
        return self

    # ------------------------------------------------------------------------ queries

    def objectives(self) -> list[Metric]:
        """What the study optimizes, in order; never empty (see the module docstring)."""
        if self.metrics:
            return list(self.metrics)
        if self.metric is not None:
            return [self.metric]
        return [Metric(name=DEFAULT_METRIC_NAME)]

    @property
    def is_grid(self) -> bool:
        """True when trials walk the grid (method grid, or sampler grid)."""
        return self.method == "grid" or (self.sampler is not None and self.sampler.name == "grid")

    @property
    def sampler_name(self) -> str:
        """The sampler in effect: ``sampler.name`` or the method's default."""
        if self.sampler is not None:
            return self.sampler.name
        return DEFAULT_SAMPLERS[self.method]

    def sweep_name(self, default: str) -> str:
        return self.name if self.name else default

    def flat_parameters(self) -> dict[str, ParamSpec]:
        """Dotted flat name -> parameter, in W&B's order (sorted keys, groups in place)."""
        return {".".join(path): p for path, p in iter_leaves(self.parameters)}

    def parameter_paths(self) -> dict[str, tuple[str, ...]]:
        """Dotted flat name -> its path of keys through the nesting."""
        return {".".join(path): path for path, _ in iter_leaves(self.parameters)}

    def nest(self, flat: Mapping[str, Any]) -> dict[str, Any]:
        """Flat trial parameters -> nested as in the sweep file (what `trial.params` shows)."""
        return nest(self.parameter_paths(), flat)

    def flat_priors(self) -> list[dict[str, Any]]:
        """The priors with dotted flat names (they are valid: checked at parse time)."""
        return [flatten_prior(self.parameters, prior)[0] for prior in self.priors]

    def warnings(self) -> list[str]:
        """Things worth telling the user that do not make the file invalid."""
        out: list[str] = []
        for path, p in iter_leaves(self.parameters):
            where = issue_line(("parameters", *tree_loc(path)), "")
            if p.distribution in EXPONENT_FORMS:
                span = (f"e^-{p.max}..e^-{p.min}" if p.distribution == "inv_log_uniform"
                        else f"e^{p.min}..e^{p.max}")
                out.append(f"{where}{p.distribution} takes natural-log exponents as min/max "
                           f"(values {span}); W&B recommends "
                           f"{EXPONENT_FORMS[p.distribution]}, which takes the values")
            if p.distribution == "categorical_w_probabilities" and self.sampler_name != "random":
                out.append(f"{where}only the random sampler honours probabilities; "
                           f"{self.sampler_name} treats the values as equally likely")
        return out

    def to_json_dict(self) -> dict[str, Any]:
        """Normalized and JSON-safe: distributions explicit, defaults filled, aliases
        resolved, ranges expanded. ``parse_spec(spec.to_json_dict()) == spec``."""
        out = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        out["parameters"] = _tree_json(self.parameters)
        return out

    def spec_hash(self) -> str:
        """SHA-256 (hex) of the normalized spec: equal for equivalent sweep files."""
        text = json.dumps(self.to_json_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _tree_json(tree: Mapping[str, ParamSpec | ParamGroup]) -> dict[str, Any]:
    return {
        name: {"parameters": _tree_json(node.parameters)} if isinstance(node, ParamGroup)
        else node.to_json()
        for name, node in tree.items()
    }


# ------------------------------------------------------------------------------ parsing


def parse_spec(data: Mapping[str, Any], source: str = "<sweep>") -> SweepSpec:
    """Validate parsed sweep data; raise SpecError listing every problem found."""
    if not isinstance(data, Mapping):
        got = "nothing" if data is None else f"a {type(data).__name__}"
        raise SpecError([f"{source}: a sweep must be a mapping with method:, parameters: ... "
                         f"(got {got})"])
    if nesting_depth(data) > MAX_DEPTH:  # deeper than any sweep; the checks below recurse
        raise SpecError([f"{source}: nested more than {MAX_DEPTH} levels deep"])
    if keyed := non_string_keys(data):
        raise SpecError(_lines(keyed, {}, source))
    raw, issues, written = _apply_aliases(data)
    spec: SweepSpec | None = None
    try:
        spec = SweepSpec.model_validate(raw)
    except ValidationError as exc:
        found, cross_ran = issues_from_validation_error(exc)
        issues += found
        if not cross_ran:
            issues += _partial_cross_issues(raw, found)
    if issues or spec is None:
        raise SpecError(_lines(issues, written, source))
    return spec


class StoredSpecError(HqSweepError):
    """A sweep's spec as stored on the server does not parse: its record is damaged (or was
    written by an incompatible hq-sweep), not the user's file."""


def parse_stored_spec(spec_json: str | None, sweep_id: str) -> SweepSpec:
    """The spec a sweep's record holds (JSON, as `to_json_dict` wrote it); StoredSpecError,
    saying what to do, when it is missing, not JSON or not a valid sweep."""
    try:
        if not spec_json:
            raise ValueError("it is missing")
        data = json.loads(spec_json)
        return parse_spec(data, source="the stored spec")
    except SpecError as exc:
        why = "; ".join(exc.lines()[:3]) + ("; ..." if len(exc.lines()) > 3 else "")
    except (ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        why = str(exc) or type(exc).__name__
    raise StoredSpecError(
        f"sweep {sweep_id}: the sweep file stored on the server cannot be used ({why}); "
        f"delete the sweep (`hq-sweep delete {sweep_id} --yes --force`) and enqueue its file "
        "again")


def _apply_aliases(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[Issue], dict[str, str]]:
    """Argo's hyperparams/algorithm -> parameters/method; returns (data, issues, renames)."""
    raw = dict(data)
    issues: list[Issue] = []
    written: dict[str, str] = {}
    for alias, key in _ALIASES.items():
        if alias not in raw:
            continue
        value = raw.pop(alias)
        if key in raw:
            issues.append(((alias,), f"is another name for {key}: give only one of them"))
            continue
        raw[key], written[key] = value, alias
    algorithm = raw.get("method") if written.get("method") else None
    if isinstance(algorithm, str) and algorithm.lower() in _ALGORITHMS:
        raw["method"] = _ALGORITHMS[algorithm.lower()]
        if algorithm.lower() == "tpe":
            raw.setdefault("sampler", "tpe")
    return raw, issues, written


def _partial_cross_issues(raw: dict[str, Any], found: list[Issue]) -> list[Issue]:
    """Field errors stop pydantic before the cross-key rules; run those rules again on the
    keys that did validate, telling them which keys are broken."""
    broken: set[str] = {str(loc[0]) for loc, _ in found if loc}
    broken = {"api_version" if b == "apiVersion" else b for b in broken}
    reduced = {k: v for k, v in raw.items() if k not in broken and k != "apiVersion"}
    if "parameters" in broken:
        tree, _, bad = parse_tree(raw.get("parameters"))
        reduced["parameters"] = tree
        broken |= {f"parameters.{name}" for name in bad}
    reduced.setdefault("parameters", {})
    if "method" not in reduced:
        reduced["method"], broken = "random", broken | {"method"}
    context = {"broken": frozenset(broken), "partial": True}
    try:
        SweepSpec.model_validate(reduced, context=context)
    except ValidationError as exc:
        issues, cross_ran = issues_from_validation_error(exc)
        if cross_ran:
            return [issue for issue in issues if issue not in found]
    return []


def _lines(issues: list[Issue], written: Mapping[str, str], source: str) -> list[str]:
    """One line per issue, each naming its path (the file's own name for the document as a
    whole), keys as written (an alias, not what it stands for)."""
    lines: list[str] = []
    for loc, message in issues:
        if loc and loc[0] in written:
            loc = (written[str(loc[0])], *loc[1:])
        line = issue_line(loc, message) if loc else f"{source}: {message}"
        if line not in lines:
            lines.append(line)
    return lines


def load_spec(path: str | os.PathLike[str]) -> SweepSpec:
    """Read and validate a sweep file (YAML or JSON). A worker given as a ``.py`` path is
    resolved against the sweep file's directory, then the current directory, and stored
    as an absolute path."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SpecError([f"{file}: cannot read the sweep file: {reason}"]) from None
    data = load_yaml(text, str(file))
    if data is None:
        raise SpecError([f"{file}: the sweep file is empty"])
    spec = parse_spec(data, source=str(file))
    return _resolve_worker(spec, file.parent)


def _resolve_worker(spec: SweepSpec, base: Path) -> SweepSpec:
    worker = spec.worker
    if worker is None or not worker.is_file:
        return spec
    given = Path(worker.module)
    candidates = [given] if given.is_absolute() else [base / given, Path.cwd() / given]
    for candidate in candidates:
        if candidate.is_file():
            resolved = worker.model_copy(update={"module": str(candidate.resolve())})
            return spec.model_copy(update={"worker": resolved})
    places = " and ".join(dict.fromkeys(str(c.parent.resolve()) for c in candidates))
    raise SpecError([f"worker.module: file {worker.module} not found (looked in {places})"])

