"""Error plumbing for sweep-file validation: one line per problem, each naming its path.

Validators raise :func:`fail` (one problem where they stand) or :func:`fail_many` (several
problems below where they stand); :func:`issues_from_validation_error` turns pydantic's
``ValidationError`` into ``(loc, message)`` pairs and :func:`issue_line` renders one as
``parameters.lr.max: must be greater than min (0.1)``. No pydantic URLs, no tracebacks.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from typing import Any, NoReturn

from pydantic import ValidationError
from pydantic_core import PydanticCustomError

from hq_sweep.errors import InvalidInput

Loc = tuple[str | int, ...]
Issue = tuple[Loc, str]

VALUE_ERROR = "hq_value"
ISSUES_ERROR = "hq_issues"
CROSS_ERROR = "hq_cross"

# The keys of the file and of each section, for "did you mean" hints that fit the place.
_TOP_KEYS = (
    "method", "parameters", "metric", "metrics", "early_terminate", "name", "description",
    "program", "command", "entity", "project", "run_cap", "apiVersion", "kind", "controller",
    "job", "image_uri", "scheduler", "worker", "sampler", "pruner", "retries", "trial_timeout",
    "lease", "max_trials_per_worker", "max_worker_memory_mb", "parallelism", "priors", "seed",
    "hyperparams", "algorithm",
)
_SECTION_KEYS = {
    "metric": ("name", "goal", "target", "impute", "impute_while_running"),
    "metrics": ("name", "goal", "target", "impute", "impute_while_running"),
    "early_terminate": ("type", "min_iter", "max_iter", "s", "eta", "strict"),
    "sampler": ("name", "seed", "options"),
    "pruner": ("name", "options"),
    "worker": ("module", "setup", "objective"),
}


class SpecError(InvalidInput, ValueError):
    """An invalid sweep file. ``errors`` holds one line per problem, each naming its path.

    Also a ValueError: validators raise it inside pydantic, which collects ValueErrors.
    """

    prefixed = False  # each line already names its path

    def __init__(self, errors: Sequence[str]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(self.errors))

    def lines(self) -> list[str]:
        return self.errors


def format_loc(loc: Iterable[str | int]) -> str:
    """``("parameters", "lr", "values", 2)`` -> ``parameters.lr.values[2]``; an empty key
    or one with a newline or control character is quoted (``parameters['']``), so the path
    stays one visible line."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not part or not part.isprintable():
            out += f"[{str(part)!r}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out


def issue_line(loc: Loc, message: str) -> str:
    path = format_loc(loc)
    return f"{path}: {message}" if path else message


def show(value: Any) -> str:
    """A short, human rendering of a user's value for messages (``'foo'``, ``0.1``, ``null``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def fail(message: str) -> NoReturn:
    """Report one problem at the validator's own location."""
    raise PydanticCustomError(VALUE_ERROR, "{msg}", {"msg": message})


def fail_many(issues: Sequence[Issue], kind: str = ISSUES_ERROR) -> NoReturn:
    """Report several problems, each at a location relative to the validator's own."""
    summary = "; ".join(issue_line(loc, msg) for loc, msg in issues)
    raise PydanticCustomError(kind, "{summary}", {"summary": summary, "issues": list(issues)})


def issues_from_validation_error(exc: ValidationError) -> tuple[list[Issue], bool]:
    """Flatten a pydantic error into issues; the flag says whether cross-field checks ran."""
    out: list[Issue] = []
    cross_ran = False
    for err in exc.errors():
        loc: Loc = tuple(err["loc"])
        if err["type"] in (ISSUES_ERROR, CROSS_ERROR):
            cross_ran = cross_ran or err["type"] == CROSS_ERROR
            out.extend((loc + tuple(sub), msg) for sub, msg in err["ctx"]["issues"])
        else:
            out.append((loc, humanize(err)))
    return out, cross_ran


def nesting_depth(data: Any) -> int:
    """How many mappings and lists deep `data` goes (without recursion: any depth)."""
    deepest, stack = 0, [(data, 0)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if isinstance(node, dict):
            stack.extend((child, depth + 1) for child in node.values())
        elif isinstance(node, list):
            stack.extend((child, depth + 1) for child in node)
    return deepest


def non_string_keys(data: Any, loc: Loc = ()) -> list[Issue]:
    """Every mapping key that is not text, where it stands. YAML makes `1:` an int and
    `yes:`/`on:` a bool; stored as JSON they would come back as text, another sweep."""
    found: list[Issue] = []
    if isinstance(data, dict):
        for key, value in data.items():
            if not isinstance(key, str):
                found.append((loc, f"key {show(key)} must be text (quote it in YAML: "
                                   f"'{key}'; YAML reads yes/no/on/off as true/false)"))
            else:
                found += non_string_keys(value, (*loc, key))
    elif isinstance(data, list):
        for index, item in enumerate(data):
            found += non_string_keys(item, (*loc, index))
    return found


def suggest(word: str, candidates: Iterable[str], cutoff: float = 0.75) -> str:
    """`` (did you mean 'x'?)`` for a close candidate, else an empty string."""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=cutoff)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _unknown_key(loc: Loc) -> str:
    if len(loc) == 1:
        return "unknown key" + suggest(str(loc[0]), _TOP_KEYS)
    section = _SECTION_KEYS.get(str(loc[0]))
    return "unknown key" + (suggest(str(loc[-1]), section, 0.6) if section else "")


_PLAIN = {
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping",
    "model_type": "must be a mapping",
    "model_attributes_type": "must be a mapping",
    "int_type": "must be an integer",
    "float_type": "must be a number",
    "bool_type": "must be true or false",
}


def humanize(err: Any) -> str:
    """One readable message for a built-in pydantic error (custom ones carry their own)."""
    kind = err["type"]
    if kind == VALUE_ERROR:
        return str(err["ctx"]["msg"])
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        return _unknown_key(tuple(err["loc"]))
    if kind == "literal_error":
        expected = str(err.get("ctx", {}).get("expected", "")).replace(" or ", ", ")
        return f"must be one of {expected.replace(chr(39), '')} (got {show(err['input'])})"
    if kind in _PLAIN:
        return f"{_PLAIN[kind]} (got {show(err['input'])})"
    message = str(err["msg"])
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
