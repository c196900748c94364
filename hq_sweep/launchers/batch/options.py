"""What an sbatch script is rendered from: `SbatchOptions`, checked option by option.

Every problem is one line naming its flag, so `hq-sweep sbatch` can say all of them at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hq_sweep.errors import InvalidInput

_NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
_SWEEP_ID = re.compile(_NAME)
_SLURM_NAME = re.compile(r"[A-Za-z0-9_.+-]+(,[A-Za-z0-9_.+-]+)*")  # partitions may be a list
# Slurm's --time forms: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S.
_TIME = re.compile(r"(?:(\d+)-(\d+)(?::(\d+))?(?::(\d+))?|(\d+)(?::(\d+))?(?::(\d+))?)")
_UNSAFE_IN_QUOTES = re.compile(r'["`\\\n]|\$\(')
_SIGNAL_MAX = 65535  # Slurm's --signal takes at most 0xffff seconds


class SbatchOptionError(InvalidInput, ValueError):
    """Invalid options; ``errors`` holds one line per problem, each naming its option."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = tuple(errors)

    def lines(self) -> list[str]:
        return list(self.errors)


class TemplateError(SbatchOptionError):
    """The template has unknown placeholders or lacks a required one."""


@dataclass(frozen=True)
class SbatchOptions:
    """What the script needs; paths are rendered as given (the CLI makes them absolute)."""

    sweep_file: str
    sweep_id: str
    nodes: int = 1
    gpus_per_node: int = 0
    time: str = "1:00:00"
    partition: str | None = None
    account: str | None = None
    cpus_per_task: int | None = None
    workers_per_gpu: int = 1
    chain: int = 1
    signal_seconds: int = 120
    # None: "${XDG_STATE_HOME:-$HOME/.local/state}/hq-sweep/sweeps/<sweep id>", expanded by
    # the job's shell, not at render time (the CLI fills it from $HQ_SWEEP_STATE_DIR if set).
    state_dir: str | None = None
    # A virtual environment to activate (the CLI passes the one hq-sweep runs from).
    venv: str | None = None
    log_path: str | None = None  # None: hq-sweep-<sweep id>-%j.out in the submit directory

    @property
    def tasks_per_node(self) -> int:
        """Workers per node: one per GPU times workers_per_gpu; without GPUs, workers_per_gpu."""
        return max(self.gpus_per_node, 1) * self.workers_per_gpu


def parse_slurm_time(text: str) -> int | None:
    """Seconds in a Slurm time limit (``90``, ``1:00:00``, ``2-00:00:00``); None if malformed."""
    match = _TIME.fullmatch(text.strip())
    if match is None:
        return None
    days, d_hours, d_minutes, d_seconds, minutes, m_seconds, h_seconds = match.groups()
    if days is not None:
        parts = [int(days) * 24 + int(d_hours), int(d_minutes or 0), int(d_seconds or 0)]
        return (parts[0] * 60 + parts[1]) * 60 + parts[2]
    if h_seconds is not None:  # H:M:S
        return (int(minutes) * 60 + int(m_seconds)) * 60 + int(h_seconds)
    return int(minutes) * 60 + int(m_seconds or 0)


def _count_errors(o: SbatchOptions) -> list[str]:
    checks = [
        ("--nodes", o.nodes, 1),
        ("--gpus-per-node", o.gpus_per_node, 0),
        ("--workers-per-gpu", o.workers_per_gpu, 1),
        ("--chain", o.chain, 1),
        ("--signal-seconds", o.signal_seconds, 1),
    ]
    if o.cpus_per_task is not None:
        checks.append(("--cpus-per-task", o.cpus_per_task, 1))
    return [
        f"{flag}: expected an integer >= {least} (got {value!r})"
        for flag, value, least in checks
        if isinstance(value, bool) or not isinstance(value, int) or value < least
    ]


def _time_errors(o: SbatchOptions) -> list[str]:
    seconds = parse_slurm_time(o.time)
    if seconds is None or seconds == 0:
        return [f"--time: expected Slurm time like 1:00:00 or 2-00:00:00 (got {o.time!r})"]
    if isinstance(o.signal_seconds, int) and o.signal_seconds > _SIGNAL_MAX:
        return [f"--signal-seconds: Slurm allows at most {_SIGNAL_MAX} (got {o.signal_seconds})"]
    if isinstance(o.signal_seconds, int) and o.signal_seconds >= seconds:
        return [
            f"--signal-seconds: {o.signal_seconds} s must be shorter than --time {o.time} "
            f"({seconds} s), or workers stop before they start"
        ]
    return []


def _text_errors(o: SbatchOptions) -> list[str]:
    errors = []
    if not _SWEEP_ID.fullmatch(o.sweep_id):
        errors.append(
            f"--sweep: expected letters, digits, '.', '_' or '-', starting with a letter or "
            f"digit (got {o.sweep_id!r})"
        )
    for flag, value in (("--partition", o.partition), ("--account", o.account)):
        if value is not None and not _SLURM_NAME.fullmatch(value):
            errors.append(f"{flag}: expected a Slurm name like 'gpu' or 'a,b' (got {value!r})")
    for flag, value in (("--state-dir", o.state_dir), ("--venv", o.venv), ("FILE", o.sweep_file)):
        if value is not None and (not value or _UNSAFE_IN_QUOTES.search(value)):
            errors.append(
                f"{flag}: expected a non-empty path without quotes, backslashes, backticks, "
                f"'$(' or newlines (got {value!r})"
            )
    if o.log_path is not None and (not o.log_path or "\n" in o.log_path):
        errors.append(f"log path: expected a non-empty single-line path (got {o.log_path!r})")
    return errors


def validate(options: SbatchOptions) -> None:
    """Raise :class:`SbatchOptionError` listing every problem with `options`."""
    errors = _count_errors(options) + _time_errors(options) + _text_errors(options)
    if errors:
        raise SbatchOptionError(errors)
