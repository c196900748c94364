"""`hq-sweep sbatch`: golden scripts, real-bash checks of the rendered logic, errors, the CLI.

Golden files live in tests/golden/; after an intended change, regenerate them with
``HQ_SWEEP_UPDATE_GOLDEN=1 pytest tests/unit/test_sbatch.py`` and read the diff.
"""

from __future__ import annotations

import difflib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Protocol

import pytest
import typer
from typer.testing import CliRunner

from hq_sweep.cli.sbatch import register_cluster_commands
from hq_sweep.launchers.batch.script import (
    DEFAULT_TEMPLATE,
    PLACEHOLDERS,
    SbatchOptionError,
    SbatchOptions,
    TemplateError,
    parse_slurm_time,
    render_sbatch,
)

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("HQ_SWEEP_UPDATE_GOLDEN") == "1"
BASH = shutil.which("bash")

CASES: dict[str, SbatchOptions] = {
    "gpu_multinode_chain": SbatchOptions(
        sweep_file="/home/me/sweeps/digits.yaml",
        sweep_id="digits",
        nodes=2,
        gpus_per_node=4,
        workers_per_gpu=2,
        time="2-00:00:00",
        chain=3,
        cpus_per_task=4,
        venv="/home/me/.venvs/hq",
    ),
    "cpu_only": SbatchOptions(
        sweep_file="sweeps/argo grid.yaml",
        sweep_id="argo-grid",
        nodes=1,
        gpus_per_node=0,
        time="30",
        cpus_per_task=8,
    ),
    "partition_account": SbatchOptions(
        sweep_file="/proj/x/noop.yaml",
        sweep_id="noop",
        nodes=4,
        gpus_per_node=1,
        time="12:00:00",
        partition="gpu,gpu-long",
        account="proj42",
        signal_seconds=300,
        state_dir="$SCRATCH/hq-sweep/noop",
        venv="/opt/venvs/hq/",
        log_path="logs/%x-%j.log",
    ),
}
SITE_TEMPLATE = GOLDEN / "site_template.sh.in"
SITE_OPTIONS = SbatchOptions(
    sweep_file="/home/me/sweeps/digits.yaml", sweep_id="digits", nodes=1, gpus_per_node=2,
    time="4:00:00", chain=2, partition="a100",
)  # fmt: skip


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.sbatch"
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = difflib.unified_diff(
            expected.splitlines(keepends=True), text.splitlines(keepends=True),
            fromfile=str(path), tofile="rendered",
        )  # fmt: skip
        pytest.fail(
            "rendered script differs from its golden file (HQ_SWEEP_UPDATE_GOLDEN=1 "
            "regenerates):\n" + "".join(diff),
            pytrace=False,
        )


def _bash_syntax(text: str) -> None:
    assert BASH is not None, "bash is needed to check rendered scripts"
    done = subprocess.run([BASH, "-n"], input=text, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", sorted(CASES))
def test_golden_scripts(name: str) -> None:
    text = render_sbatch(CASES[name])
    _check_golden(name, text)
    _bash_syntax(text)


def test_golden_site_template() -> None:
    text = render_sbatch(SITE_OPTIONS, SITE_TEMPLATE.read_text(encoding="utf-8"))
    _check_golden("site_template", text)
    _bash_syntax(text)
    assert "{{" not in text


def test_scripts_copy_is_the_default_template() -> None:
    copy = ROOT / "scripts" / "sbatch_template.sh"
    if UPDATE:
        copy.write_text(DEFAULT_TEMPLATE, encoding="utf-8")
    assert copy.read_text(encoding="utf-8") == DEFAULT_TEMPLATE, (
        "scripts/sbatch_template.sh must equal DEFAULT_TEMPLATE in "
        "hq_sweep/launchers/batch/script.py (HQ_SWEEP_UPDATE_GOLDEN=1 copies it)"
    )


def test_directives_follow_the_options() -> None:
    gpu = render_sbatch(CASES["gpu_multinode_chain"])
    assert "#SBATCH --ntasks-per-node=8\n" in gpu
    assert "#SBATCH --gres=gpu:4\n" in gpu
    assert "#SBATCH --signal=B:USR1@120\n" in gpu
    assert "#SBATCH --partition" not in gpu
    cpu = render_sbatch(CASES["cpu_only"])
    assert "--gres" not in cpu
    assert "#SBATCH --ntasks-per-node=1\n" in cpu
    assert "source" not in cpu  # no venv given: nothing to activate
    assert "sbatch --parsable" not in cpu  # no chain
    site = render_sbatch(CASES["partition_account"])
    assert "#SBATCH --partition=gpu,gpu-long\n#SBATCH --account=proj42\n" in site
    assert 'export HQ_SWEEP_STATE_DIR="$SCRATCH/hq-sweep/noop"\n' in site


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30", 1800), ("5:30", 330), ("1:00:00", 3600), ("2-00:00:00", 172800), ("1-2", 93600),
     ("1-0:30", 88200), ("soon", None), ("1:00:00:00", None), ("-1", None), ("", None)],
)  # fmt: skip
def test_parse_slurm_time(text: str, seconds: int | None) -> None:
    assert parse_slurm_time(text) == seconds


def _errors(**changes: object) -> list[str]:
    base = {"sweep_file": "s.yaml", "sweep_id": "s", "time": "1:00:00"}
    with pytest.raises(SbatchOptionError) as caught:
        render_sbatch(SbatchOptions(**{**base, **changes}))  # type: ignore[arg-type]
    assert all("\n" not in line for line in caught.value.errors)
    assert str(caught.value) == "\n".join(caught.value.errors)
    return list(caught.value.errors)


def test_validation_messages_name_the_option() -> None:
    assert _errors(time="soon") == [
        "--time: expected Slurm time like 1:00:00 or 2-00:00:00 (got 'soon')"
    ]
    assert _errors(nodes=0) == ["--nodes: expected an integer >= 1 (got 0)"]
    assert _errors(gpus_per_node=-1)[0].startswith("--gpus-per-node:")
    assert _errors(chain=0)[0].startswith("--chain:")
    assert _errors(cpus_per_task=0)[0].startswith("--cpus-per-task:")
    assert _errors(workers_per_gpu=0)[0].startswith("--workers-per-gpu:")
    assert _errors(time="1:00", signal_seconds=120)[0].startswith(
        "--signal-seconds: 120 s must be shorter than --time 1:00 (60 s)"
    )
    assert _errors(sweep_id="my sweep")[0].startswith("--sweep: expected letters")
    assert _errors(partition="gpu; rm")[0].startswith("--partition:")
    assert _errors(state_dir='x"; rm -rf /; "')[0].startswith("--state-dir:")
    both = _errors(nodes=0, account="a b")
    assert [line.split(":")[0] for line in both] == ["--nodes", "--account"]


def test_template_placeholder_errors() -> None:
    options = CASES["gpu_multinode_chain"]
    with pytest.raises(TemplateError) as caught:
        render_sbatch(options, "#!/bin/bash\n{{sbatch_directives}}\n{{wrokers}}\n")
    errors = caught.value.errors
    assert errors[0].startswith("--template: unknown placeholder {{wrokers}} on line 3 (known: ")
    assert "--template: missing placeholder {{workers}}" in errors
    assert "--template: missing placeholder {{chain}} (needed by --chain > 1)" in errors
    assert isinstance(caught.value, ValueError)
    with pytest.raises(TemplateError) as inline:
        render_sbatch(CASES["cpu_only"], "{{sbatch_directives}}\n# see {{server}}\n{{workers}}\n")
    assert inline.value.errors == ("--template: {{server}} on line 2 must stand alone on its line",)
    # Without chaining, the chain blocks are optional; a value is never re-expanded.
    text = render_sbatch(CASES["cpu_only"], "{{sbatch_directives}}\n{{ workers }}\n")
    assert "{{" not in text
    assert set(PLACEHOLDERS) >= {"sbatch_directives", "setup", "server", "enqueue", "workers"}


# -- the rendered logic, run by real bash against fake hq-sweep / sbatch / scancel ---------

FAKE_HQ = r"""#!/bin/bash
echo "hq-sweep $*" >> "$FAKE_LOG"
case "$1" in
  server) [[ $2 == status ]] && exit 1; exit 0 ;;
  status) echo "{\"state\": \"$(cat "$FAKE_STATE")\"}" ;;
  start-workers)
    terms=0
    trap 'echo "worker USR1" >> "$FAKE_LOG"; exit 12' USR1
    trap 'terms=$((terms + 1)); echo "worker TERM $terms" >> "$FAKE_LOG"
          (( terms == 2 )) && exit 11' TERM
    if [[ $FAKE_WORKERS == finish ]]; then echo finished > "$FAKE_STATE"; exit 0; fi
    touch "$FAKE_READY"
    while :; do sleep 0.05; done ;;
esac
"""
FAKE_SBATCH = '#!/bin/bash\necho "sbatch $*" >> "$FAKE_LOG"\necho "4242;cluster"\n'
FAKE_SCANCEL = '#!/bin/bash\necho "scancel $*" >> "$FAKE_LOG"\n'


class Runner(Protocol):
    def __call__(
        self, workers: str, options: SbatchOptions, link: str | None = None
    ) -> subprocess.Popen[str]: ...


@pytest.fixture
def job(tmp_path: Path) -> Runner:
    """Starts a rendered script as Slurm would (spool copy as $0, SLURM_* set), fakes on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("hq-sweep", FAKE_HQ), ("sbatch", FAKE_SBATCH), ("scancel", FAKE_SCANCEL)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    (tmp_path / "state").write_text("running")

    def start(
        workers: str, options: SbatchOptions, link: str | None = None
    ) -> subprocess.Popen[str]:
        script = tmp_path / "slurm_script"
        script.write_text(render_sbatch(options))
        env = {
            "PATH": f"{bin_dir}:{os.environ['PATH']}", "HOME": str(tmp_path),
            "FAKE_LOG": str(tmp_path / "log"), "FAKE_STATE": str(tmp_path / "state"),
            "FAKE_READY": str(tmp_path / "ready"), "FAKE_WORKERS": workers,
            "SLURM_JOB_ID": "100", "SLURM_SUBMIT_DIR": str(tmp_path), "SLURM_NTASKS": "16",
        }  # fmt: skip
        if link is not None:
            env["HQ_SWEEP_CHAIN_LINK"] = link
        return subprocess.Popen(
            [str(BASH), str(script)], env=env, cwd=tmp_path, text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip

    return start


def _log(proc: subprocess.Popen[str], tmp_path: Path) -> list[str]:
    proc.wait(timeout=20)
    return (tmp_path / "log").read_text().splitlines()


def _wait_ready(tmp_path: Path) -> None:
    deadline = time.monotonic() + 10
    while not (tmp_path / "ready").exists():
        assert time.monotonic() < deadline, "the fake workers never started"
        time.sleep(0.02)


CHAINED = SbatchOptions(sweep_file="/s/demo.yaml", sweep_id="demo", nodes=2, gpus_per_node=4,
                        time="1:00:00", chain=3)  # fmt: skip


def test_chain_link_queues_next_and_cancels_it_when_finished(job: Runner, tmp_path: Path) -> None:
    proc = job("finish", CHAINED)
    log = _log(proc, tmp_path)
    assert proc.returncode == 0, proc.stdout.read() if proc.stdout else ""
    state = tmp_path / ".local" / "state" / "hq-sweep" / "sweeps" / "demo"  # the XDG default
    assert log[0] == f"hq-sweep server status --state-dir {state}"
    assert log[1] == f"hq-sweep server start --bind 0.0.0.0 --state-dir {state}"
    assert log[2] == "hq-sweep enqueue /s/demo.yaml --sweep demo --detach"
    assert log[4] == (
        f"sbatch --parsable --chdir={tmp_path} --dependency=afterany:100 "
        f"--export=ALL,HQ_SWEEP_CHAIN_LINK=2 {tmp_path}/slurm_script"
    )
    assert log[5] == "hq-sweep start-workers --sweep demo --workers-per-gpu 1"
    assert log[-2:] == ["scancel 4242", f"hq-sweep server stop --state-dir {state}"]


def test_usr1_lets_workers_finish_and_keeps_the_next_link(job: Runner, tmp_path: Path) -> None:
    proc = job("run", CHAINED)
    _wait_ready(tmp_path)
    proc.send_signal(signal.SIGUSR1)
    log = _log(proc, tmp_path)
    assert "worker USR1" in log
    assert not any(line.startswith("scancel") for line in log)  # the sweep goes on next link
    assert proc.returncode == 12  # the workers' status is the job's


def test_term_is_forwarded_twice_so_trials_go_back(job: Runner, tmp_path: Path) -> None:
    proc = job("run", CASES["cpu_only"])
    _wait_ready(tmp_path)
    proc.send_signal(signal.SIGTERM)
    log = _log(proc, tmp_path)
    assert [line for line in log if line.startswith("worker")] == ["worker TERM 1", "worker TERM 2"]
    assert proc.returncode == 11


def test_last_link_does_not_chain(job: Runner, tmp_path: Path) -> None:
    proc = job("finish", CHAINED, link="3")
    log = _log(proc, tmp_path)
    assert proc.returncode == 0
    assert not any(line.startswith(("sbatch", "scancel")) for line in log)


def test_signal_before_workers_start_skips_them(tmp_path: Path) -> None:
    # USR1 while the server starts: remembered, and the workers are not started at all.
    options = SbatchOptions(sweep_file="s.yaml", sweep_id="s", time="10")
    text = render_sbatch(options).replace(
        "hq-sweep server status", "kill -USR1 $$; hq-sweep server status", 1
    )
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "SLURM_NTASKS": "1"}
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "hq-sweep").write_text('#!/bin/sh\necho "$@" >> "$HOME/log"\n')
    (fake / "hq-sweep").chmod(0o755)
    env["PATH"] = f"{fake}:{env['PATH']}"
    done = subprocess.run([str(BASH), "-c", text], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "USR1 before the workers started" in done.stderr
    assert "start-workers" not in (tmp_path / "log").read_text()


# -- the CLI ------------------------------------------------------------------------------


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:  # a group, so the command is invoked by name as in hq-sweep
        pass

    register_cluster_commands(app)
    return app


def _sweep_file(tmp_path: Path) -> Path:
    path = tmp_path / "my.yaml"
    path.write_text("method: random\nname: my sweep/v2\nparameters:\n  x: {min: 0.0, max: 1.0}\n")
    return path


def test_cli_writes_the_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(_app(), [
        "sbatch", str(_sweep_file(tmp_path)), "--nodes", "2", "--gpus-per-node", "4",
        "--time", "1:00:00", "--chain", "2", "--venv", "/opt/venv",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    script = tmp_path / "my-sweep-v2.sbatch"  # the sweep's name, made safe for an id
    text = script.read_text()
    assert f"hq-sweep enqueue {tmp_path}/my.yaml --sweep my-sweep-v2 --detach" in text
    assert "source /opt/venv/bin/activate" in text
    assert "submit it with: sbatch my-sweep-v2.sbatch" in result.output
    _bash_syntax(text)


def test_cli_output_template_and_errors(tmp_path: Path) -> None:
    sweep = str(_sweep_file(tmp_path))
    out = tmp_path / "job.sh"
    args = ["sbatch", sweep, "-N", "1", "--gpus-per-node", "0", "-t", "10", "-o", str(out)]
    result = CliRunner().invoke(_app(), [*args, "--template", str(SITE_TEMPLATE)])
    assert result.exit_code == 0, result.output
    assert "module load" in out.read_text()
    bad = CliRunner().invoke(_app(), [*args[:-4], "-t", "soon", "--nodes", "0"])
    assert bad.exit_code == 2
    assert "--time: expected Slurm time like 1:00:00 or 2-00:00:00 (got 'soon')" in bad.output
    assert "Traceback" not in bad.output
    broken = tmp_path / "broken.yaml"
    broken.write_text("method: nope\n")
    spec = CliRunner().invoke(_app(), ["sbatch", str(broken), *args[2:]])
    assert spec.exit_code == 2 and "method" in spec.output


def test_cli_submit_without_sbatch_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    out = tmp_path / "job.sbatch"
    result = CliRunner().invoke(_app(), [
        "sbatch", str(_sweep_file(tmp_path)), "--nodes", "1", "--gpus-per-node", "1",
        "--time", "1:00:00", "--output", str(out), "--submit",
    ])  # fmt: skip
    assert result.exit_code == 1
    assert "--submit: `sbatch` is not on PATH" in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)
    assert out.exists()  # written first, so it can be submitted by hand


def test_cli_submit_prints_the_job_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "sbatch").write_text('#!/bin/sh\necho "$@" > "$0.args"\necho "777;c1"\n')
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    out = tmp_path / "job.sbatch"
    result = CliRunner().invoke(_app(), [
        "sbatch", str(_sweep_file(tmp_path)), "--nodes", "1", "--gpus-per-node", "1",
        "--time", "1:00:00", "--output", str(out), "--submit",
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "submitted job 777" in result.output
    assert (bin_dir / "sbatch.args").read_text().split() == ["--parsable", str(out)]
