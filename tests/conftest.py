"""Shared fixtures: a small simulated dataset, settings in a temp root, a real Postgres DB."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from paycycle import config
from paycycle.sim.simulator import SimSpec, simulate

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def run_python(
    args: list[str], cwd: Path, env: dict[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """`python ARGS` in a child process as a user would run it; output captured as text."""
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def env_without_prefect(**extra: str) -> dict[str, str]:
    """This process's environment minus any PREFECT_* setting (a plain shell), plus `extra`."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")} | extra


PG_ADMIN_URL = os.environ.get(
    "PAYCYCLE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SMALL = SimSpec(customers=3_000, months=12, seed=11, chunk_customers=1_000)


@pytest.fixture(scope="session")
def small_sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3k-customer, 12-month baseline simulation, shared read-only by the session.

    Returns the folder holding `raw/` and `truth/`. Copy it before changing anything.
    """
    root = tmp_path_factory.mktemp("sim")
    simulate(SMALL, root / "raw", root / "truth")
    return root


@pytest.fixture()
def project(tmp_path: Path, small_sim: Path) -> config.Settings:
    """Settings rooted in a fresh temp project with the small simulation copied in."""
    shutil.copy(PROJECT_ROOT / "params.yaml", tmp_path / "params.yaml")
    shutil.copytree(small_sim / "raw", tmp_path / "data" / "raw")
    shutil.copytree(small_sim / "truth", tmp_path / "data" / "truth")
    return config.load(root=tmp_path)


@pytest.fixture(scope="session")
def champion_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    """A temp MLflow SQLite store with a small trained `paycycle-churn@champion`.

    Returns (tracking URI, its work folder). Trained once per session (~1 min).
    """
    from training.churn.pipeline import bootstrap_champion

    work = tmp_path_factory.mktemp("champion")
    return bootstrap_champion(work), work


def _admin_engine():
    from sqlalchemy import create_engine

    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture()
def pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on 127.0.0.1:5432, dropped afterwards."""
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError

    name = f"paycycle_t_{uuid.uuid4().hex[:10]}"
    admin = _admin_engine()
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:  # pragma: no cover - CI starts Postgres
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def prefect_harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Prefect's test server (temporary database) with PREFECT_HOME in a temp dir.

    Flows called inside a test that uses this fixture run against that server; results that
    cached tasks persist land under the returned PREFECT_HOME, never in ~/.prefect.
    """
    from prefect.context import refresh_global_settings_context
    from prefect.testing.utilities import prefect_test_harness

    home = tmp_path_factory.mktemp("prefect")
    env = {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    try:
        with config.env_kept(env):
            os.environ.update(env)
            refresh_global_settings_context()
            with prefect_test_harness(server_startup_timeout=120):
                yield home
    finally:
        refresh_global_settings_context()
