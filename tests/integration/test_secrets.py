"""The Redis password stays where the user put it (issue 14): a URL exported as
$HQ_SWEEP_REDIS_URL reaches hq-sweep's workers, controller and srun steps only as the path of
a 0600 credentials file, and the user's program not even that. Checked on the real processes
(/proc/PID/environ and cmdline, `ps`), the programs' own environments, and every log."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.integration.helpers import (
    cli_env,
    finished_rows,
    hq,
    poll,
    process_gone,
    start_detached_controller,
)
from tests.integration.secret_probe import (
    assert_files_clean,
    assert_processes_clean,
    assert_programs_clean,
    assert_ps_clean,
    marked_processes,
    password,
    probe_sweep,
    probes,
)

pytestmark = pytest.mark.integration
HQ_SWEEP = [sys.executable, "-m", "hq_sweep"]


def _env(redis_url: str, tmp_path: Path, pause: str) -> tuple[dict[str, str], str]:
    marker = f"hqs-secrets-{uuid.uuid4().hex}"
    return cli_env(redis_url, tmp_path, HQ_SWEEP_TEST_MARKER=marker, PROBE_PAUSE_S=pause,
                   PROBE_DIR=str(tmp_path / "probes")), marker


def _credentials_file(environ: str) -> Path:
    for item in environ.split("\0"):
        name, _, value = item.partition("=")
        if name == "HQ_SWEEP_REDIS_URL_FILE":
            return Path(value)
    raise AssertionError("no HQ_SWEEP_REDIS_URL_FILE in the environment")


def _assert_private(path: Path, state: Path) -> None:
    assert path.parent == state.resolve() / "credentials"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def _kill(pid: int) -> None:
    """A detached controller a failed test leaves behind (it ends with its sweep)."""
    if not process_gone(pid):
        os.kill(pid, signal.SIGKILL)


@pytest.mark.timeout(120)
def test_local_workers_controller_and_programs_never_hold_the_secret(
    redis_url: str, tmp_path: Path
) -> None:
    secret = password(redis_url)
    env, marker = _env(redis_url, tmp_path, pause="1.0")
    state = tmp_path / "state"
    spec = probe_sweep(tmp_path, "sec", trials=6)
    controller = start_detached_controller(spec, "sec", env)
    controller_environ = Path(f"/proc/{controller}/environ").read_bytes().decode()
    assert secret not in controller_environ
    _assert_private(_credentials_file(controller_environ), state)
    out = tmp_path / "workers.log"
    with out.open("wb") as log:
        workers = subprocess.Popen([*HQ_SWEEP, "start-workers", "--workers", "2", "--sweep",
                                    "sec"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        seen: dict[int, tuple[str, str]] = {}

        def programs_running() -> bool:  # a snapshot with both workers and a program in it
            seen.clear()
            seen.update(marked_processes(marker))
            return sum("probe.py" in cmd for _, cmd in seen.values()) >= 1 and sum(
                "hq_sweep worker" in cmd for _, cmd in seen.values()) == 2

        poll(programs_running, 60, "two workers and a trial program", out.read_text)
        assert_ps_clean(secret)
        assert_processes_clean(seen, secret, allowed={workers.pid})
        worker_environ = next(e for e, cmd in seen.values() if "hq_sweep worker" in cmd)
        credentials = _credentials_file(worker_environ)
        _assert_private(credentials, state)
        assert workers.wait(60) == 0, out.read_text()[-3000:]
    finally:
        workers.kill()
        _kill(controller)
    assert not credentials.exists()  # start-workers removed the file it wrote
    assert sorted(r["number"] for r in finished_rows(redis_url, "sec")) == list(range(6))
    assert_programs_clean(probes(tmp_path / "probes"), secret)
    assert_files_clean(tmp_path / "state" / "logs", secret)  # the controller's log
    assert secret not in out.read_text()


@pytest.mark.timeout(120)
def test_run_hands_workers_a_file_and_removes_it(redis_url: str, tmp_path: Path) -> None:
    secret = password(redis_url)
    env, _marker = _env(redis_url, tmp_path, pause="0")
    ran = hq(["run", str(probe_sweep(tmp_path, "runsec", trials=4)), "--workers", "2"], env)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert secret not in ran.stdout + ran.stderr
    records = probes(tmp_path / "probes")
    assert_programs_clean(records, secret)
    assert "HQ_SWEEP_REDIS_URL_FILE=" in records[0]["worker_environ"]
    assert list((tmp_path / "state" / "credentials").iterdir()) == []  # removed at the end
    assert_files_clean(tmp_path / "state" / "logs", secret)  # the workers' logs


def test_a_credentials_file_others_may_read_is_refused(redis_url: str, tmp_path: Path) -> None:
    loose = tmp_path / "loose.json"
    loose.write_text(json.dumps({"url": redis_url}))
    loose.chmod(0o644)
    env = {k: v for k, v in os.environ.items() if k != "HQ_SWEEP_REDIS_URL"}
    env["HQ_SWEEP_REDIS_URL_FILE"] = str(loose)
    done = hq(["list"], env)
    assert done.returncode == 2, done.stderr
    assert f"{loose} is readable or writable by others (mode 0644)" in " ".join(
        done.stderr.split()), done.stderr
    assert "chmod 600" in done.stderr and "Traceback" not in done.stderr
    assert password(redis_url) not in done.stderr
    loose.chmod(0o600)
    assert hq(["list"], env).returncode == 0  # the same file, private: used


@pytest.mark.xdist_group("slurm")
@pytest.mark.timeout(150)
def test_slurm_steps_and_their_workers_never_hold_the_secret(
    redis_url: str, tmp_path: Path
) -> None:
    if shutil.which("salloc") is None:
        pytest.skip("no Slurm here (salloc not found); see /work/shared/slurm/README.md")
    secret = password(redis_url)
    env, marker = _env(redis_url, tmp_path, pause="1.0")
    spec = probe_sweep(tmp_path, "slsec", trials=8)
    controller = start_detached_controller(spec, "slsec", env)
    name = f"hqsweep-{tmp_path.name}"
    out = tmp_path / "salloc.log"
    with out.open("wb") as log:
        job = subprocess.Popen(["salloc", "-I60", "-J", name, "-N2", "-n2", "-t", "5",
                                *HQ_SWEEP, "start-workers", "--sweep", "slsec"],
                               env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        seen: dict[int, tuple[str, str]] = {}

        def steps_running() -> bool:
            seen.clear()
            seen.update(marked_processes(marker))
            return any(cmd.startswith("srun ") for _, cmd in seen.values()) and any(
                "probe.py" in cmd for _, cmd in seen.values())

        poll(steps_running, 90, "srun steps running trial programs", out.read_text)
        assert_ps_clean(secret)
        # salloc and the start-workers it runs got the URL from the test, as from a user.
        given = {pid for pid, (_, cmd) in seen.items() if "salloc" in cmd or "start-workers"
                 in cmd}
        assert_processes_clean(seen, secret, allowed=given)
        assert job.wait(90) == 0, out.read_text()[-3000:]
    finally:
        job.kill()
        subprocess.run(["scancel", "-n", name], capture_output=True, timeout=20, check=False)
        _kill(controller)
    assert sorted(r["number"] for r in finished_rows(redis_url, "slsec")) == list(range(8))
    records = probes(tmp_path / "probes")
    assert_programs_clean(records, secret)
    assert any("SLURM_STEP_ID=" in r["worker_environ"] for r in records)  # ran as steps
    assert secret not in out.read_text()
    assert_files_clean(tmp_path / "state" / "logs", secret)
