"""HyperQueueLauncher against a real in-process HyperQueue cluster (`hyperqueue.LocalCluster`).

The PyPI wheel embeds HQ's server and worker, so no `hq` binary is needed: the workers run as
real HQ program tasks on one HQ worker that offers 4 CPUs.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hq_sweep import exitcodes
from hq_sweep.launchers.hyperqueue import HyperQueueLauncher, failure_code
from hq_sweep.server.credentials import ServerRef
from hq_sweep.server.handoff import Handoff
from tests.integration.helpers import cli_env, finished_rows, write_sweep
from tests.integration.secret_probe import (
    assert_files_clean,
    assert_programs_clean,
    password,
    probe_sweep,
    probes,
)

pytestmark = pytest.mark.integration

# ImportError too, not only "not installed": a wheel whose native library cannot load here
# (e.g. an older glibc) should skip as cleanly.
hyperqueue = pytest.importorskip(
    "hyperqueue", reason="the `hyperqueue` package is not importable (pip install hyperqueue)",
    exc_type=ImportError,
)

TOY = str(Path(__file__).parent.parent / "workers" / "toy.py")
RUN_CAP = 40


def _nowhere(tmp_path: Path) -> Handoff:
    """Workers told of a server that is not there."""
    return Handoff(ServerRef("redis://:not-a-real-secret@127.0.0.1:1/0"), tmp_path)


@pytest.fixture
def hq_server_dir(tmp_path: Path) -> Iterator[Path]:
    """A LocalCluster (server + one 4-CPU worker, in this process); yields its server dir."""
    from hyperqueue.cluster import WorkerConfig

    cluster = hyperqueue.LocalCluster(str(tmp_path / "hq"), worker_config=WorkerConfig(cores=4))
    try:
        yield Path(cluster.cluster.server_dir)
    finally:
        cluster.stop()  # also ends any task still running (HQ sends it SIGINT)


def _events() -> tuple[list[str], Any]:
    events: list[str] = []
    return events, events.append


@pytest.mark.timeout(120)
def test_two_hq_tasks_run_a_sweep_to_the_end(
    redis_url: str, tmp_path: Path, hq_server_dir: Path
) -> None:
    spec = write_sweep(tmp_path, {
        "name": "hqs", "method": "random", "run_cap": RUN_CAP, "worker": TOY,
        "parameters": {"x": {"min": 0.0, "max": 6.0}},
    })
    events, on_event = _events()
    server = Handoff(ServerRef(redis_url), tmp_path)
    launcher = HyperQueueLauncher(2, server, "hqs", cpus_per_worker=1,
                                  server_dir=hq_server_dir, log_dir=tmp_path / "logs",
                                  env={"HQ_SWEEP_TEST_PAUSE": "0.15"}, on_event=on_event)
    # Workers first: they wait for the sweep to be registered, so both are usually ready when
    # the first trial is queued; the pause per trial (40 trials: 6 s for a lone worker) leaves
    # a slow second start ample time to take some trials too.
    launcher.start()
    env = cli_env(redis_url, tmp_path)
    log = (tmp_path / "controller.log").open("wb")
    controller = subprocess.Popen(
        [sys.executable, "-m", "hq_sweep", "enqueue", str(spec), "--sweep", "hqs"],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        finished = launcher.wait(90)
        assert controller.wait(30) == 0, (tmp_path / "controller.log").read_text()
    finally:
        if controller.poll() is None:
            controller.kill()
        log.close()
    logs = "\n".join(p.read_text() for p in sorted((tmp_path / "logs").iterdir()))
    assert finished, f"HQ workers still running\n{logs[-3000:]}"
    assert launcher.exit_codes() == [0, 0], (events, logs[-3000:])
    rows = finished_rows(redis_url, "hqs")
    assert [r["number"] for r in rows] == list(range(RUN_CAP))
    assert all(r["state"] == "complete" for r in rows)
    workers = {r["worker"] for r in rows}
    assert len(workers) == 2, workers
    # Ranks come from the launcher (HQ_SWEEP_RANK), visible in the worker names.
    assert {w.split("-r")[-1].split("-")[0] for w in workers} == {"0", "1"}



@pytest.mark.timeout(120)
def test_hq_tasks_and_their_programs_never_hold_the_secret(
    redis_url: str, tmp_path: Path, hq_server_dir: Path
) -> None:
    """HQ keeps task environments (in memory, and in its journal where it keeps one): a task
    gets the path of a 0600 credentials file, removed once the tasks are over."""
    secret = password(redis_url)
    spec = probe_sweep(tmp_path, "hqsec", trials=4)
    server = Handoff(ServerRef(redis_url), tmp_path / "state")
    launcher = HyperQueueLauncher(2, server, "hqsec", server_dir=hq_server_dir,
                                  log_dir=tmp_path / "logs",
                                  env={"PROBE_DIR": str(tmp_path / "probes")})
    launcher.start()
    credentials = Path(server.env["HQ_SWEEP_REDIS_URL_FILE"])
    controller = subprocess.run(
        [sys.executable, "-m", "hq_sweep", "enqueue", str(spec), "--sweep", "hqsec"],
        env=cli_env(redis_url, tmp_path), capture_output=True, text=True, timeout=90)
    assert controller.returncode == 0, controller.stderr[-3000:]
    assert launcher.wait(60), "HQ workers still running"
    assert launcher.exit_codes() == [0, 0]
    records = probes(tmp_path / "probes")
    assert_programs_clean(records, secret)
    assert all(f"HQ_SWEEP_REDIS_URL_FILE={credentials}" in r["worker_environ"] for r in records)
    assert not credentials.exists()
    assert_files_clean(hq_server_dir, secret)  # HQ's own state, its journal included
    assert_files_clean(tmp_path / "logs", secret)


@pytest.mark.timeout(60)
def test_crashing_worker_is_resubmitted_then_given_up_with_its_exit_code(
    tmp_path: Path, hq_server_dir: Path
) -> None:
    # An unknown option makes the worker's CLI exit 2 at once: a crash, as far as codes go.
    events, on_event = _events()
    launcher = HyperQueueLauncher(
        1, _nowhere(tmp_path), "nope", server_dir=hq_server_dir,
        log_dir=tmp_path / "logs", extra_args=["--no-such-option"], on_event=on_event,
        max_crashes=2, backoff_initial_s=0.1,
    )
    launcher.start()
    first_job = launcher.job_ids[0]
    assert launcher.wait(45)
    assert launcher.exit_codes() == [2]
    assert launcher.gave_up() == [0]
    assert launcher.job_ids[0] != first_job  # it was resubmitted once before giving up
    assert any("exit code 2" in e and "log:" in e for e in events), events
    assert any("giving up" in e for e in events), events


@pytest.mark.timeout(60)
def test_stop_without_hq_binary_says_how_to_cancel(
    tmp_path: Path, hq_server_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No sweep "later" is registered: the worker waits for it, i.e. it keeps running.
    monkeypatch.setattr("hq_sweep.launchers.hyperqueue.shutil.which", lambda name: None)
    events, on_event = _events()
    launcher = HyperQueueLauncher(1, _nowhere(tmp_path), "later",
                                  server_dir=hq_server_dir, log_dir=tmp_path / "logs",
                                  on_event=on_event)
    launcher.start()
    assert not launcher.wait(0.5)
    assert launcher.exit_codes() == [None]
    launcher.stop(grace_s=0)
    assert any(f"hq job cancel {launcher.job_ids[0]}" in e for e in events), events


@pytest.mark.timeout(60)
def test_stopping_signal_is_a_cancel_done_by_the_next_poll(
    tmp_path: Path, hq_server_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("hq_sweep.launchers.hyperqueue.shutil.which", lambda name: None)
    events, on_event = _events()
    launcher = HyperQueueLauncher(1, _nowhere(tmp_path), "later",
                                  server_dir=hq_server_dir, log_dir=tmp_path / "logs",
                                  on_event=on_event)
    launcher.start()
    assert launcher.describe().startswith(f"1 workers as HyperQueue jobs {launcher.job_ids[0]}")
    launcher.signal_all(signal.SIGHUP)  # not a stopping signal: HQ cannot pass it on
    assert not launcher.wait(0.5)
    assert events == ["signal 1 cannot be passed on to HyperQueue tasks; ignored"]
    launcher.signal_all(signal.SIGTERM)
    assert len(events) == 1  # a signal handler only records it: nothing blocks in there
    # No `hq` binary: the next pass says how to cancel and stops supervising, so the CLI's
    # wait(None) returns instead of waiting for the sweep.
    assert launcher.wait(5)
    assert f"hq job cancel {launcher.job_ids[0]}" in events[1], events
    assert launcher.exit_codes() == [None]
    assert launcher.gave_up() == []


def test_failure_text_parsing() -> None:
    assert failure_code("Program terminated with exit code 3.") == exitcodes.UNUSABLE
    assert failure_code("Program terminated by signal 9") == -9
    assert failure_code("cannot spawn program") == exitcodes.ERROR
