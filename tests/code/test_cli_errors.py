"""The CLI as a user runs it: one stderr line and a distinct exit code per kind of failure,
servers stopped with their whole process group, library chatter in reports/cli.log."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from paycycle.errors import EXIT_DATA, EXIT_FAILURE, EXIT_UNAVAILABLE, EXIT_USAGE
from tests.code.test_byo_csv import write_csv
from tests.conftest import PROJECT_ROOT, env_without_prefect, run_python

UNSET = (
    "PAYCYCLE_API_TOKEN",
    "MLFLOW_TRACKING_URI",
    "PAYCYCLE_DATABASE_URL",
    "PAYCYCLE_PARAMS_PATH",
)
VALID_TOKEN = "cli-test-token-0123456789"  # serving.credentials: >= 16 characters
CHATTER = re.compile(r"WARNING|Warning|W0000|oneDNN|tensorflow")


def cli_env(root: Path, **extra: str) -> dict[str, str]:
    """A plain shell rooted in `root`: none of this machine's PayCycle/MLflow/Prefect settings."""
    env = {k: v for k, v in env_without_prefect().items() if k not in UNSET}
    return env | {"PAYCYCLE_ROOT": str(root), "PREFECT_HOME": str(root / ".prefect")} | extra


def paycycle(root: Path, *args: str, timeout: float = 120, **env: str):
    return run_python(["-m", "paycycle", *args], root, cli_env(root, **env), timeout)


def assert_one_line_error(done: subprocess.CompletedProcess[str], code: int, *needles: str) -> str:
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == code, done.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


@pytest.fixture()
def root(tmp_path: Path) -> Path:
    shutil.copy(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    return tmp_path


@pytest.fixture()
def busy_port() -> Iterator[int]:
    """A port on 127.0.0.1 that something listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_exit_codes_are_distinct() -> None:
    assert len({EXIT_FAILURE, EXIT_USAGE, EXIT_DATA, EXIT_UNAVAILABLE}) == 4
    assert EXIT_USAGE == 2  # click's own code for usage errors


@pytest.mark.parametrize(
    ("args", "needle"),
    [(["train", "churn", "--bogus"], "--bogus"), (["no-such-command"], "no-such-command")],
)
def test_usage_error_is_one_line(root: Path, args: list[str], needle: str) -> None:
    assert_one_line_error(paycycle(root, *args), EXIT_USAGE, needle)


def test_serve_without_token_is_a_usage_error(root: Path) -> None:
    assert_one_line_error(paycycle(root, "serve"), EXIT_USAGE, "PAYCYCLE_API_TOKEN")


def test_serve_on_a_busy_port_names_it(root: Path, busy_port: int) -> None:
    done = paycycle(root, "serve", "--port", str(busy_port), PAYCYCLE_API_TOKEN=VALID_TOKEN)
    assert_one_line_error(done, EXIT_UNAVAILABLE, f"127.0.0.1:{busy_port}", "in use")


def test_ui_on_a_busy_port_names_it(root: Path, busy_port: int) -> None:
    done = paycycle(root, "ui", "--port", str(busy_port))
    assert_one_line_error(done, EXIT_UNAVAILABLE, f"127.0.0.1:{busy_port}", "in use")


def test_train_on_a_bad_csv_is_a_data_error(root: Path) -> None:
    (root / "bad.csv").write_text("a,churn\n1,yes\n2,maybe\n3,no\n")
    done = paycycle(root, "train", "churn", "--csv", "bad.csv", "--target", "churn")
    assert_one_line_error(done, EXIT_DATA, "churn: target must be", "'maybe'")


@pytest.mark.parametrize(
    ("header", "cell", "needles"),
    [
        ("tenure,spend,churn", lambda i: f"{i},{'1e999' if i == 4 else i}", ("spend:", "row(s) 6")),
        ("tenure, tenure ,churn", lambda i: f"{i},{i % 5}", ("tenure: header appears twice",)),
        ("tenure,spend/month,churn", lambda i: f"{i},{i}", ("spend/month: column name", "_")),
        ("tenure,monthly spend,churn", lambda i: f"{i},{i}", ("monthly spend: column name",)),
    ],
    ids=["1e999", "collision", "slash", "space"],
)
def test_train_on_a_hostile_csv_is_one_line_naming_the_column(
    root: Path, header: str, cell, needles: tuple[str, ...]
) -> None:
    """Each used to train on garbage, or crash with a pandas/Keras traceback line (exit 1)."""
    rows = [header] + [f"{cell(i)},{'yes' if i % 3 == 0 else 'no'}" for i in range(40)]
    (root / "t.csv").write_text("\n".join(rows) + "\n")
    done = paycycle(root, "train", "churn", "--csv", "t.csv", "--target", "churn")
    assert_one_line_error(done, EXIT_DATA, *needles)


@pytest.mark.slow
def test_promote_without_challenger_is_a_data_error(project) -> None:
    from features.table import snapshot_dates, write_feature_table

    d, fp = project.params.data, project.params.features
    dates = snapshot_dates(d.start_date, d.months, fp.snapshots, fp.horizon_days)
    write_feature_table(project.raw_dir, project.path(fp.path), dates)
    done = paycycle(project.root, "promote", "churn", timeout=240)
    assert_one_line_error(done, EXIT_DATA, "paycycle-churn@challenger", "no challenger")


@pytest.mark.slow
def test_child_failure_is_one_line_with_its_exit_code(root: Path) -> None:
    """`raise typer.Exit(code)` reaches the shell: `mlflow ui` on a store it cannot open."""
    done = paycycle(root, "ui", "--port", str(free_port()), MLFLOW_TRACKING_URI="bogus://nowhere")
    assert_one_line_error(done, EXIT_FAILURE, "mlflow ui exited with code")
    assert (root / "reports" / "cli.log").stat().st_size > 0


def _live(psutil, pids: list[int]) -> list[int]:
    """The pids still running (killed orphans may linger as zombies until init reaps them)."""
    alive = []
    for pid in pids:
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                alive.append(pid)
        except psutil.NoSuchProcess:
            continue
    return alive


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_serve_stops_its_whole_family_on_sigterm(root: Path) -> None:
    """bentoml in its own group, its workers (circus setsid) in theirs: SIGTERM stops them all."""
    psutil = pytest.importorskip("psutil")
    with (root / "out.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "paycycle", "serve", "--port", str(free_port())],
            cwd=root,
            env=cli_env(root, PAYCYCLE_API_TOKEN=VALID_TOKEN),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    family: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120  # bentoml and one worker (a grandchild) started
        while time.monotonic() < deadline and proc.poll() is None and len(family) < 2:
            time.sleep(0.2)
            family = psutil.Process(proc.pid).children(recursive=True)
        assert len(family) >= 2, (root / "out.log").read_text()[-2000:]
        leader = next(p for p in family if p.ppid() == proc.pid)
        assert os.getpgid(leader.pid) == leader.pid != os.getpgid(proc.pid)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0, (root / "out.log").read_text()[-2000:]
        assert _live(psutil, [p.pid for p in family]) == []
    finally:
        if proc.poll() is None:  # do not leave the server behind when the test fails
            for p in [*family, psutil.Process(proc.pid)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    p.kill()
            proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        ["train", "churn", "--csv", "t.csv", "--target", "Churn", "--id", "id"],
        ["simulate", "--customers", "200", "--months", "3"],
    ],
    ids=["train-csv", "simulate"],
)
def test_commands_are_quiet_and_chatter_goes_to_the_log(root: Path, args: list[str]) -> None:
    if args[0] == "train":
        write_csv(root / "t.csv", n=300)
    done = paycycle(root, *args, timeout=300)
    assert done.returncode == 0, done.stderr
    noisy = [line for line in (done.stdout + done.stderr).splitlines() if CHATTER.search(line)]
    assert noisy == [], noisy
    log = (root / "reports" / "cli.log").read_text()
    if args[0] == "train":  # TensorFlow's C++ lines, Python warnings, MLflow's logging
        assert "oneDNN" in log or "tensorflow" in log, log[-2000:]
        assert "py.warnings" in log and "mlflow" in log, log[-2000:]


@pytest.mark.slow
def test_verbose_shows_the_chatter(root: Path) -> None:
    """The same failing command in two fresh projects: quiet by default, chatty with --verbose."""
    quiet = paycycle(root, "evaluate")
    assert_one_line_error(quiet, EXIT_USAGE, "paycycle-churn@champion")
    assert "mlflow" in (root / "reports" / "cli.log").read_text()
    other = root / "verbose"
    other.mkdir()
    shutil.copy(root / "params.yaml", other / "params.yaml")
    loud = paycycle(other, "--verbose", "evaluate")
    assert loud.returncode == EXIT_USAGE
    assert "mlflow" in loud.stderr and loud.stderr.splitlines()[-1].startswith("error: ")


def test_build_without_a_bentofile_is_a_usage_error(root: Path) -> None:
    done = paycycle(root, "build")
    assert_one_line_error(done, EXIT_USAGE, "bentofile.yaml: missing")


def test_build_failure_is_one_line(root: Path) -> None:
    """`bentoml build` itself fails (a service path that does not exist): one line, exit 1."""
    (root / "bentofile.yaml").write_text('service: "nowhere.service:Nothing"\nname: paycycle\n')
    shutil.copy(PROJECT_ROOT / "pyproject.toml", root / "pyproject.toml")
    shutil.copy(PROJECT_ROOT / "uv.lock", root / "uv.lock")
    done = paycycle(root, "build", timeout=180, BENTOML_HOME=str(root / "bentoml"))
    assert_one_line_error(done, EXIT_FAILURE, "bentoml build:")
