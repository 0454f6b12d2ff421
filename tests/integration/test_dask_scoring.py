"""Batch scoring on a real Dask cluster through Prefect, against single-process scoring.

A scheduler and two single-threaded workers run as subprocesses on 127.0.0.1 (`dask scheduler`,
`dask worker --no-nanny`, so the process we SIGKILL is the worker itself). The flow reaches
them through `PAYCYCLE_DASK_ADDRESS`, exactly as on the compose cluster. The data is a small
simulation in six partitions; the champion is the session's small trained model.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from paycycle import config
from paycycle.sim.simulator import SimSpec, simulate
from tests.conftest import PROJECT_ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

AS_OF = dt.date(2025, 10, 1)
SIM = SimSpec(customers=1_200, months=12, seed=3, chunk_customers=200)  # 6 partitions
DASK = str(Path(sys.executable).with_name("dask"))
START_TIMEOUT = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(PROJECT_ROOT),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "3",
    }


@dataclass
class Cluster:
    address: str
    logs: Path
    procs: list[subprocess.Popen] = field(default_factory=list)

    def start_worker(self, name: str) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("w")
        proc = subprocess.Popen(
            [DASK, "worker", self.address, "--nthreads", "1", "--no-nanny", "--name", name]
            + ["--memory-limit", "4GiB", "--no-dashboard"],
            cwd=PROJECT_ROOT,
            env=_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 20
        for proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """`dask scheduler` + 2 `dask worker --nthreads 1` on 127.0.0.1; always torn down."""
    from distributed import Client

    logs = tmp_path_factory.mktemp("dask")
    port = _free_port()
    c = Cluster(f"tcp://127.0.0.1:{port}", logs)
    c.procs.append(
        subprocess.Popen(
            [DASK, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            cwd=PROJECT_ROOT,
            env=_env(),
            stdout=(logs / "scheduler.log").open("w"),
            stderr=subprocess.STDOUT,
        )
    )
    try:
        for i in range(2):
            c.start_worker(f"w{i}")
        with Client(c.address, timeout=START_TIMEOUT) as client:
            client.wait_for_workers(2, timeout=START_TIMEOUT)
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scoresim")
    simulate(SIM, root / "raw", root / "truth")
    return root


@pytest.fixture()
def scoring_project(
    tmp_path: Path,
    sim: Path,
    champion_store: tuple[str, Path],
    pg_url: str,
    cluster: Cluster,
    prefect_harness: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> config.Settings:
    """A project on the small partitioned simulation, its customers loaded into Postgres, the
    champion in MLflow and `PAYCYCLE_DASK_ADDRESS` pointing at the test cluster."""
    from paycycle.loader import load_raw
    from paycycle.store import make_engine, upgrade

    shutil.copy(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(sim / "raw", tmp_path / "data" / "raw")
    monkeypatch.setenv("PAYCYCLE_ROOT", str(tmp_path))
    monkeypatch.setenv("PAYCYCLE_DATABASE_URL", pg_url)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", champion_store[0])
    monkeypatch.setenv("PAYCYCLE_DASK_ADDRESS", cluster.address)
    settings = config.load(root=tmp_path)
    upgrade(settings)
    engine = make_engine(settings.db_url)
    load_raw(engine, settings.raw_dir)
    engine.dispose()
    return settings


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, sim: Path, champion_store: tuple[str, Path]
) -> pd.DataFrame:
    """Single-process scores of the same data (no Dask, no Prefect, no store)."""
    from inference.batch import score_all
    from inference.score_io import read_scores

    root = tmp_path_factory.mktemp("reference")
    shutil.copy(PROJECT_ROOT / "params.yaml", root / "params.yaml")
    settings = config.load(root=root, mlflow_tracking_uri=champion_store[0])
    shutil.copytree(sim / "raw", settings.raw_dir)
    score_all(settings, AS_OF, root / "scores", store=False)
    return read_scores(root / "scores", AS_OF)


def _store_rows(settings: config.Settings) -> pd.DataFrame:
    from sqlalchemy import text

    from paycycle.store import make_engine

    engine = make_engine(settings.db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT customer_id, as_of, churn_probability FROM scores ORDER BY 1, 2")
            ).all()
    finally:
        engine.dispose()
    return pd.DataFrame(rows, columns=["customer_id", "as_of", "churn_probability"])


def _assert_same_as_reference(
    settings: config.Settings, out: Path, reference: pd.DataFrame
) -> None:
    from inference.score_io import read_scores

    got = read_scores(out, AS_OF)
    assert len(reference) > 500
    assert got["customer_id"].tolist() == reference["customer_id"].tolist()
    np.testing.assert_allclose(
        got["churn_probability"], reference["churn_probability"], rtol=0, atol=1e-6
    )
    stored = _store_rows(settings)
    assert len(stored) == len(reference)  # no row missing ...
    assert not stored.duplicated(["customer_id", "as_of"]).any()  # ... and none twice
    assert (pd.to_datetime(stored["as_of"]).dt.date == AS_OF).all()
    assert stored["customer_id"].tolist() == reference["customer_id"].tolist()
    np.testing.assert_allclose(
        stored["churn_probability"], reference["churn_probability"], rtol=0, atol=1e-6
    )


@pytest.mark.postgres
def test_cluster_scoring_equals_single_process_and_loads_models_once(
    scoring_project: config.Settings, reference: pd.DataFrame, cluster: Cluster, tmp_path: Path
) -> None:
    from flows.score import run_batch_score

    out = tmp_path / "scores"
    summary = run_batch_score(AS_OF, str(out), store=True, root=str(scoring_project.root))

    assert summary["partitions"] == 6
    assert summary["rows"] == len(reference) == summary["stored"]
    _assert_same_as_reference(scoring_project, out, reference)
    parts = pd.DataFrame(summary["parts"])
    assert parts["pid"].nunique() == 2  # both workers took partitions ...
    assert (parts.groupby("pid")["model_loads"].max() == 1).all()  # ... and loaded models once
    assert parts["peak_rss_bytes"].max() < 4 * 2**30
    assert os.getpid() not in set(parts["pid"])  # scored on the cluster, not in the test


@pytest.mark.postgres
def test_sigkilled_worker_mid_run_loses_and_duplicates_nothing(
    scoring_project: config.Settings, reference: pd.DataFrame, cluster: Cluster, tmp_path: Path
) -> None:
    """A fresh worker joins, takes a partition (it is still importing TensorFlow) and is
    SIGKILLed; Dask reschedules its partition and the run completes with every row once."""
    from distributed import Client

    from flows.score import run_batch_score

    victim = cluster.start_worker("victim")
    killed: dict[str, object] = {}
    with Client(cluster.address, timeout=START_TIMEOUT) as client:
        client.wait_for_workers(3, timeout=START_TIMEOUT)
        addr = next(a for a, pid in client.run(os.getpid).items() if pid == victim.pid)

        def kill_when_busy() -> None:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and "task" not in killed:
                busy = client.processing(workers=[addr]).get(addr) or []
                if busy:
                    os.kill(victim.pid, signal.SIGKILL)
                    killed["task"] = busy[0]
                    return
                time.sleep(0.05)

        killer = threading.Thread(target=kill_when_busy, daemon=True)
        killer.start()
        out = tmp_path / "scores"
        summary = run_batch_score(AS_OF, str(out), store=True, root=str(scoring_project.root))
        killer.join(5)

    assert "task" in killed, "the victim never got a partition; nothing was killed"
    assert victim.wait(10) == -signal.SIGKILL
    assert victim.pid not in set(pd.DataFrame(summary["parts"])["pid"])
    assert summary["partitions"] == 6 and summary["rows"] == len(reference)
    _assert_same_as_reference(scoring_project, out, reference)
