"""`hq-sweep plot` and `hq-sweep report` after real sweeps, and what a browser makes of them:
the report in headless chromium (file://, offline), and an exported study in optuna-dashboard.

The browser tests skip with a reason where chromium or optuna-dashboard is absent (.ci/run
installs both when it can). Screenshots go to the test's tmp_path and to test-artifacts/ in
the repository root, for a person to look at.
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest

from tests.integration.helpers import cli_env, hq, write_sweep

pytestmark = pytest.mark.integration

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
OBJECTIVE = """
def objective(trial, state):
    x, y, opt = trial.params["x"], trial.params["y"], trial.params["opt"]
    value = (x - 1) ** 2 + 0.1 * y + (0.5 if opt == "adam" else 0.0)
    for step in range(3):
        trial.report(value + 3 - step, step)
    return value
"""
MULTI_OBJECTIVE = """
def objective(trial, state):
    x, y = trial.params["x"], trial.params["y"]
    return [x ** 2 + y, (x - 2) ** 2 - y]
"""
UNSAFE = "<b>sgd</b>"  # a user value that must reach the HTML escaped
SINGLE_CHARTS = ["history", "parallel-coordinates", "importances-fanova", "intermediate-values"]


def _run_sweep(tmp_path: Path, env: dict[str, str], name: str, source: str,
               **body: object) -> None:
    (tmp_path / f"{name}.py").write_text(source)
    spec = write_sweep(tmp_path, {"name": name, "method": "random", "seed": 3,
                                  "worker": {"module": f"{name}.py"}, **body}, f"{name}.yaml")
    ran = hq(["run", str(spec), "--workers", "2"], env)
    assert ran.returncode == 0, ran.stderr


def _single(tmp_path: Path, env: dict[str, str], trials: int = 20) -> None:
    _run_sweep(tmp_path, env, "figs", OBJECTIVE, run_cap=trials,
               metric={"name": "loss", "goal": "minimize"},
               parameters={"x": {"min": -2.0, "max": 2.0}, "y": {"min": 1, "max": 5},
                           "opt": {"values": [UNSAFE, "adam"]}})


def _assert_png(path: Path) -> None:
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, path
    assert len(data) > 10_000, (path, len(data))
    height, width = matplotlib.image.imread(path).shape[:2]
    assert width > 400 and height > 300, (path, width, height)


@pytest.mark.timeout(120)
def test_plot_writes_each_chart_as_a_png_and_says_what_it_left_out(
        redis_url: str, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    env = cli_env(redis_url, tmp_path)
    _single(tmp_path, env)
    drawn = hq(["plot", "--sweep", "figs", "--out", str(tmp_path / "pngs")], env)
    assert drawn.returncode == 0, drawn.stderr
    expected = [str(tmp_path / "pngs" / f"{stem}.png") for stem in SINGLE_CHARTS]
    assert drawn.stdout.split() == expected
    for path in expected:
        _assert_png(Path(path))
    assert "note:" not in drawn.stderr and "Traceback" not in drawn.stderr

    _run_sweep(tmp_path, env, "one", "def objective(trial, state):\n    return trial.params['x']\n",
               run_cap=1, parameters={"x": {"min": -2.0, "max": 2.0}, "y": {"min": 1, "max": 5}})
    few = hq(["plot", "--sweep", "one", "--out", str(tmp_path / "few")], env)
    assert few.returncode == 0, few.stderr
    assert few.stdout.split() == [str(tmp_path / "few" / f"{s}.png")
                                  for s in ("history", "parallel-coordinates")]
    assert "note: importances: left out (need at least 2 complete trials" in few.stderr
    assert "note: intermediate values: left out (no trial reported any)" in few.stderr


@pytest.mark.timeout(120)
def test_plot_of_a_multi_objective_sweep_draws_its_pareto_front(
        redis_url: str, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    env = cli_env(redis_url, tmp_path)
    _run_sweep(tmp_path, env, "multi", MULTI_OBJECTIVE, run_cap=16,
               metrics=[{"name": "loss", "goal": "minimize"},
                        {"name": "cost", "goal": "minimize"}],
               parameters={"x": {"min": -2.0, "max": 2.0}, "y": {"min": 0.0, "max": 1.0}})
    drawn = hq(["plot", "--out", str(tmp_path / "pngs")], env)
    assert drawn.returncode == 0, drawn.stderr
    stems = [Path(line).stem for line in drawn.stdout.split()]
    per_objective = ["history", "parallel-coordinates", "importances-fanova"]
    assert stems == [f"{kind}-{metric}" for metric in ("loss", "cost")
                     for kind in per_objective] + ["pareto-front"]
    for line in drawn.stdout.split():
        _assert_png(Path(line))


@pytest.mark.timeout(120)
def test_plot_and_report_refuse_clearly_without_a_complete_trial_or_the_extra(
        redis_url: str, tmp_path: Path) -> None:
    env = cli_env(redis_url, tmp_path)
    (tmp_path / "bad.py").write_text("def objective(trial, state):\n    raise ValueError('no')\n")
    spec = write_sweep(tmp_path, {"name": "bad", "method": "random", "run_cap": 3,
                                  "worker": {"module": "bad.py"},
                                  "parameters": {"x": {"min": 0.0, "max": 1.0}}})
    assert hq(["run", str(spec), "--workers", "1"], env).returncode == 4
    for args in (["plot", "--out", str(tmp_path / "pngs")], ["report", "-o", "r.html"]):
        refused = hq(args, env)
        assert refused.returncode == 2, refused.stderr
        assert "no complete trial yet (3 finished): nothing to plot" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert not (tmp_path / "pngs").exists()

    shadow = tmp_path / "shadow"  # matplotlib and plotly that do not import
    for name in ("matplotlib", "plotly"):
        (shadow / name).mkdir(parents=True)
        (shadow / name / "__init__.py").write_text("raise ImportError('not here')\n")
    _single(tmp_path, env, trials=4)
    hidden = {**env, "PYTHONPATH": str(shadow)}
    for args, missing in ((["plot", "--out", str(tmp_path / "p")], "matplotlib"),
                          (["report", "-o", str(tmp_path / "r.html")], "plotly")):
        refused = hq(args, hidden)
        assert refused.returncode == 2, refused.stderr
        assert f"needs {missing}, which is not installed here" in refused.stderr
        assert "pip install 'hq-sweep[plots]'" in refused.stderr


@pytest.mark.timeout(30)
def test_the_cli_starts_without_importing_matplotlib_or_plotly() -> None:
    probe = ("import sys, hq_sweep.cli.app; "
             "print(sorted(m for m in ('matplotlib', 'plotly') if m in sys.modules))")
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           timeout=30)
    assert found.stdout.strip() == "[]", found.stderr


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (apt-get install chromium; .ci/run tries)")
    return found


def _browse(tmp_path: Path, url: str, *flags: str) -> subprocess.CompletedProcess[str]:
    """Headless chromium on `url` (its own profile: tests may run side by side)."""
    command = [_chromium(), "--headless=new", "--no-sandbox", "--disable-gpu",
               f"--user-data-dir={tmp_path / 'chromium-profile'}", "--hide-scrollbars",
               "--window-size=1280,2400", *flags, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=90)


def _screenshot(tmp_path: Path, url: str, name: str, *flags: str) -> Path:
    shot = tmp_path / name
    taken = _browse(tmp_path, url, f"--screenshot={shot}", *flags)
    assert shot.exists() and shot.read_bytes()[:8] == PNG_SIGNATURE, taken.stderr[-2000:]
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / name)
    return shot


@pytest.mark.timeout(180)
def test_report_is_one_offline_html_file_that_renders_in_a_browser(
        redis_url: str, tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    env = cli_env(redis_url, tmp_path)
    _single(tmp_path, env)
    page_path = tmp_path / "report.html"
    made = hq(["report", "--sweep", "figs", "-o", str(page_path), "-k", "5"], env)
    assert made.returncode == 0, made.stderr
    assert made.stdout.strip() == str(page_path)
    page = page_path.read_text()
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)\s*=\s*[\"']?(https?:)?//",
                         page, re.IGNORECASE), "the report loads something from the network"
    assert UNSAFE not in page and "&lt;b&gt;sgd&lt;/b&gt;" in page
    assert "name: figs" in page  # the stored sweep file

    dumped = _browse(tmp_path, page_path.as_uri(), "--enable-logging=stderr", "--v=0",
                     "--virtual-time-budget=10000", "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    assert len(re.findall(r'class="[^"]*\bplotly-graph-div\b', dom)) == len(SINGLE_CHARTS)
    assert dom.count('class="main-svg"') >= len(SINGLE_CHARTS)  # plotly drew each of them
    top = dom[dom.index('id="top-trials"'):]
    assert top[:top.index("</table>")].count('class="trial"') == 5
    console = [line for line in dumped.stderr.splitlines()
               if "CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    assert _screenshot(tmp_path, page_path.as_uri(), "report.png",
                       "--virtual-time-budget=10000").stat().st_size > 50_000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _poll_dom(tmp_path: Path, url: str, wanted: list[str], timeout: float) -> str:
    """The page's DOM once it shows every string of `wanted` (a JS app fills it in)."""
    deadline = time.monotonic() + timeout
    while True:
        dom = _browse(tmp_path, url, "--virtual-time-budget=10000", "--dump-dom").stdout
        text = re.sub(r"<[^>]+>", " ", dom)
        if all(w in text for w in wanted) or time.monotonic() > deadline:
            return text


@pytest.mark.timeout(240)
def test_an_exported_sweep_opens_in_optuna_dashboard(redis_url: str, tmp_path: Path) -> None:
    dashboard = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent))
    if dashboard is None:
        pytest.skip("optuna-dashboard is not installed (pip install optuna-dashboard)")
    _chromium()
    env = cli_env(redis_url, tmp_path)
    _single(tmp_path, env)
    storage = f"sqlite:///{tmp_path / 'x.db'}"
    assert hq(["export", "--sweep", "figs", "--optuna-storage", storage], env).returncode == 0
    best = optuna.load_study(study_name="figs", storage=storage).best_trial.number
    port = _free_port()
    log = tmp_path / "dashboard.log"
    with log.open("w") as sink:  # a file, not a pipe: it logs every request
        server = subprocess.Popen([dashboard, storage, "--host", "127.0.0.1", "--port",
                                   str(port)], stdout=sink, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while not _answers(f"{base}/api/studies"):
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "optuna-dashboard did not answer in 60 s"
            time.sleep(0.2)
        wanted = ["figs (id=1)", f"Best Trial (number={best})", "trial #19"]
        text = _poll_dom(tmp_path, f"{base}/dashboard/studies/1", wanted, timeout=60)
        assert all(w in text for w in wanted), (wanted, re.sub(r"\s+", " ", text)[-3000:])
        _screenshot(tmp_path, f"{base}/dashboard/studies/1", "optuna-dashboard.png",
                    "--virtual-time-budget=10000", "--window-size=1400,1000")
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
