"""Reading a sweep file's YAML as W&B does: PyYAML's safe loader (so `1e-5` stays text, as
with W&B's loader), except that dates and timestamps (`2024-01-01`), which PyYAML would make
`date` objects that JSON cannot hold, become the text W&B's agent passes a program: `str()`
of the value (`2024-01-01`, `2024-01-01 10:00:00`).
"""

from __future__ import annotations

from typing import Any

import yaml

from hq_sweep.spec.issues import SpecError


class _SweepLoader(yaml.SafeLoader):
    """safe_load, with timestamps read as their text."""


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    return str(yaml.SafeLoader.construct_yaml_timestamp(loader, node))  # type: ignore[arg-type]


_SweepLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)


def load_yaml(text: str, source: str) -> Any:
    """The document in `text`; a YAML error is one SpecError line naming `source:line:col`."""
    try:
        return yaml.load(text, Loader=_SweepLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        what = " ".join(part for part in (exc.context, exc.problem) if part) or "invalid YAML"
        raise SpecError([f"{where}: {what}".replace("\n", " ")]) from None
    except yaml.YAMLError as exc:
        raise SpecError([f"{source}: {exc}".replace("\n", " ")]) from None
    except RecursionError:  # PyYAML's parser recurses once per level of nesting
        raise SpecError([f"{source}: nested too deeply to read"]) from None
