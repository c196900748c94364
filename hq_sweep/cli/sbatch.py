"""`hq-sweep sbatch`: write (and optionally submit) a Slurm batch script for a sweep.

The script itself comes from :func:`hq_sweep.launchers.batch.script.render_sbatch`; this
module turns the command line into its options (absolute sweep file path, the running virtual
environment, the sweep id) and does the file and `sbatch` work around it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from hq_sweep.cli.common import console, fail, friendly_errors
from hq_sweep.env import without_server_vars
from hq_sweep.launchers.batch.script import SbatchOptions, render_sbatch
from hq_sweep.server.connection import ENV_STATE_DIR, sweep_state_dir
from hq_sweep.spec.sweep import load_spec

__all__ = ["register_cluster_commands", "sbatch"]

_NOT_IN_ID = re.compile(r"[^A-Za-z0-9._-]+")


def _default_sweep_id(name: str) -> str:
    # A W&B sweep name may hold spaces or slashes; the id goes into paths and job names.
    return _NOT_IN_ID.sub("-", name).strip("-._") or "sweep"


def _running_venv() -> str | None:
    """The virtual environment this hq-sweep runs from, if any (its prefix differs from base)."""
    return sys.prefix if sys.prefix != sys.base_prefix else None


def _read_template(path: Path | None) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        fail(f"--template: cannot read {path}: {reason}")


def _write(path: Path, text: str) -> None:
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        fail(f"--output: cannot write {path}: {exc.strerror or exc}")


def _submit(script: Path) -> str:
    """Submit `script` with sbatch; the job id. Fails with one line when that is impossible."""
    command = shutil.which("sbatch")
    if command is None:
        fail(
            f"--submit: `sbatch` is not on PATH (not a Slurm login node?); the script is in "
            f"{script}: submit it there with `sbatch {script}`"
        )
    try:
        done = subprocess.run(
            [command, "--parsable", str(script)], capture_output=True, text=True, check=False,
            env=without_server_vars(os.environ),  # the job finds its server in the state dir
        )
    except OSError as exc:
        fail(f"--submit: cannot run {command}: {exc.strerror or exc}")
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
        fail(f"--submit: sbatch refused {script} (exit {done.returncode}): {reason}")
    return done.stdout.strip().split(";")[0]  # --parsable prints JOBID[;CLUSTER]


@friendly_errors
def sbatch(
    file: Annotated[Path, typer.Argument(
        metavar="FILE", help="Sweep file (W&B Sweeps YAML, Argo ranges).")],
    nodes: Annotated[int, typer.Option("--nodes", "-N", help="Nodes per allocation.")],
    gpus_per_node: Annotated[
        int, typer.Option("--gpus-per-node", help="GPUs per node (0: CPU-only workers).")
    ],
    time: Annotated[str, typer.Option("--time", "-t", help="Walltime, e.g. 1:00:00, 2-00:00:00.")],
    partition: Annotated[str | None, typer.Option(help="Slurm partition.")] = None,
    account: Annotated[str | None, typer.Option(help="Slurm account.")] = None,
    cpus_per_task: Annotated[int | None, typer.Option(help="CPUs per worker.")] = None,
    workers_per_gpu: Annotated[
        int, typer.Option(help="Workers per GPU (per node without GPUs).")
    ] = 1,
    chain: Annotated[
        int, typer.Option(help="Allocations run one after another until the sweep ends.")
    ] = 1,
    signal_seconds: Annotated[
        int, typer.Option(help="Warn workers (USR1) this long before the walltime.")
    ] = 120,
    state_dir: Annotated[
        str | None,
        typer.Option(
            help="Shared state directory; $VARS expand in the job (default: the one every "
            "command uses, plus sweeps/SWEEP: $HQ_SWEEP_STATE_DIR/sweeps/SWEEP, else "
            "${XDG_STATE_HOME:-~/.local/state}/hq-sweep/sweeps/SWEEP).",
            show_default=False,
        ),
    ] = None,
    sweep: Annotated[
        str | None,
        typer.Option("--sweep", "-s", help="Sweep id (default: the sweep's name or file stem)."),
    ] = None,
    venv: Annotated[
        str | None,
        typer.Option(help="Virtual environment to activate ('' for none; default: this one)."),
    ] = None,
    template: Annotated[
        Path | None, typer.Option(help="Site template with {{placeholders}}.", dir_okay=False)
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Script to write (default: SWEEP.sbatch).")
    ] = None,
    submit: Annotated[bool, typer.Option("--submit", help="Submit it with sbatch.")] = False,
) -> None:
    """Write a Slurm batch script that runs the sweep on warm workers (and submit it)."""
    spec = load_spec(file)
    sweep_id = sweep if sweep is not None else _default_sweep_id(spec.sweep_name(file.stem))
    options = SbatchOptions(
        sweep_file=str(file.resolve()), sweep_id=sweep_id, nodes=nodes,
        gpus_per_node=gpus_per_node, time=time, partition=partition, account=account,
        cpus_per_task=cpus_per_task, workers_per_gpu=workers_per_gpu, chain=chain,
        signal_seconds=signal_seconds, state_dir=state_dir or _state_root_dir(sweep_id),
        venv=_running_venv() if venv is None else (venv or None),
    )  # fmt: skip
    text = render_sbatch(options, _read_template(template))  # errors: one line per option
    path = output if output is not None else Path(f"{sweep_id}.sbatch")
    _write(path, text)
    workers = nodes * options.tasks_per_node
    console.print(f"wrote {escape(str(path))}: sweep {sweep_id}, {nodes} node(s), "
                  f"{workers} worker(s), chain of {chain}", highlight=False)  # fmt: skip
    if not submit:
        console.print(f"submit it with: sbatch {escape(str(path))}", highlight=False)
        return
    job_id = _submit(path)
    console.print(f"submitted job {job_id}", highlight=False)
    typer.echo(job_id)


def _state_root_dir(sweep_id: str) -> str | None:
    """`$HQ_SWEEP_STATE_DIR/sweeps/ID` when the user set a state dir; None: the script's own
    default (the XDG one, expanded in the job)."""
    root = os.environ.get(ENV_STATE_DIR, "").strip()
    return str(sweep_state_dir(sweep_id)) if root else None


def register_cluster_commands(app: typer.Typer) -> None:
    app.command("sbatch")(sbatch)
