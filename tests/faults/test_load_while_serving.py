"""Faults: `paycycle load` into a live PostgreSQL store while `/cancel-intent` serves, and a load
that meets a lock another session holds.

Before: the load dropped the foreign keys of big tables (ACCESS EXCLUSIVE on customers,
subscriptions, ...) for its whole transaction, so every `/cancel-intent` waited for the end of
the load (504s), and a load behind a held lock queued forever. After: a load into a live store
runs no DDL (readers and writers keep working) and waits at most `store.lock_timeout_ms` for a
lock, then fails with one line, nothing loaded.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Connection, text

from paycycle import config
from paycycle.errors import EXIT_UNAVAILABLE, ConfigError, UnavailableError
from paycycle.loader import load_raw
from paycycle.sim.simulator import SimSpec, simulate
from paycycle.store import RAW_LOAD_ORDER, make_engine, upgrade
from serving import cancel
from tests.code.test_store import parquet_counts
from tests.data.test_load_errors import TINY, snapshot

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

BIG = SimSpec(customers=20_000, months=6, seed=3, chunk_customers=5_000)
# A request blocked by the load used to wait for all of it (14 s here). Whether a request waits
# on a lock is read from PostgreSQL itself (LOCK_WAITS, polled every 20 ms); its time is bounded
# only loosely, as a share of the load's: on a loaded CI machine one request stalled 5.8 s once,
# waiting on the disk (WAL flush behind the load's writes), not on a lock.
MAX_SHARE_OF_LOAD = 0.5
EXCLUSIVE_ON_RAW = (
    "SELECT DISTINCT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
    "WHERE l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND l.granted AND l.mode = 'AccessExclusiveLock' AND c.relname = ANY(:tables)"
)
LOAD_APP = "paycycle-test-load"
LOCK_WAITS = (  # statements of the service waiting for a lock (relation, row, transaction id)
    "SELECT a.query FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    f"WHERE NOT l.granted AND a.datname = current_database() AND a.application_name <> '{LOAD_APP}'"
)


@pytest.fixture(scope="module")
def big_sim(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(first chunk of 5k customers, all 20k customers): the first makes the store live."""
    root = tmp_path_factory.mktemp("big")
    full = root / "full" / "raw"
    simulate(BIG, full, root / "full" / "truth")
    first = root / "first" / "raw"
    for table in RAW_LOAD_ORDER:  # parts are chunks of customers: part 0 is self-contained
        (first / table).mkdir(parents=True)
        shutil.copy(sorted((full / table).glob("part-*.parquet"))[0], first / table)
    return first, full


@pytest.fixture()
def serving_engine(pg_url: str) -> Iterator[None]:
    yield
    engine = cancel._ENGINES.pop(pg_url, None)  # the service's cached engine for this database
    if engine is not None:
        engine.dispose()


def test_cancel_intent_keeps_answering_during_a_live_load(
    pg_url: str, big_sim: tuple[Path, Path], tmp_path: Path, serving_engine: None
) -> None:
    first, full = big_sim
    upgrade(pg_url)
    engine = make_engine(pg_url, connect_args={"application_name": LOAD_APP})
    load_raw(engine, first)  # customers 1..5000 are live
    settings = config.load(
        params_path=config.PROJECT_ROOT / "params.yaml", root=tmp_path, database_url=pg_url
    )
    with engine.connect() as conn:
        served = conn.execute(
            text("SELECT customer_id FROM subscriptions ORDER BY customer_id LIMIT 300")
        ).scalars()
        customers = list(served)
    loading, done = threading.Event(), threading.Event()
    during: list[float] = []  # seconds of each request that started during the load
    inside_only: list[float] = []  # ... and also ended before the load did
    statuses: list[int] = []
    exclusive: set[str] = set()
    waits: set[str] = set()
    polls: list[int] = []

    def serve() -> None:
        for i in range(1_000_000):
            if done.is_set():
                return
            inside = loading.is_set()
            started = time.perf_counter()
            reply = asyncio.run(cancel.cancel_intent(settings, customers[i % 300], "not_using"))
            seconds = time.perf_counter() - started
            statuses.append(reply.status_code)
            if inside:
                during.append(seconds)
                if not done.is_set():
                    inside_only.append(seconds)
            time.sleep(0.005)

    def watch(conn: Connection) -> None:  # any ACCESS EXCLUSIVE lock granted on a raw table
        while not done.is_set():
            found = conn.execute(text(EXCLUSIVE_ON_RAW), {"tables": list(RAW_LOAD_ORDER)})
            exclusive.update(found.scalars())
            waits.update(conn.execute(text(LOCK_WAITS)).scalars())
            conn.rollback()
            polls.append(1)
            time.sleep(0.02)

    watcher_engine = make_engine(pg_url)
    with watcher_engine.connect() as watcher_conn:
        threads = [
            threading.Thread(target=serve),
            threading.Thread(target=watch, args=(watcher_conn,)),
        ]
        for thread in threads:
            thread.start()
        try:
            while len(statuses) < 3 and threads[0].is_alive():  # the service is answering
                time.sleep(0.01)
            loading.set()
            load_started = time.perf_counter()
            counts = load_raw(engine, full)
            load_seconds = time.perf_counter() - load_started
        finally:
            done.set()
            for thread in threads:
                thread.join()
    watcher_engine.dispose()

    assert counts == parquet_counts(full)  # 20k customers, nothing lost or doubled
    assert set(statuses) == {200}, sorted(set(statuses))
    assert len(inside_only) >= 20, len(inside_only)  # requests really ran while the load did
    assert len(polls) >= 20 and exclusive == set(), exclusive  # no DDL lock on a live store
    assert waits == set(), waits  # no request ever waited for a lock
    assert max(during) < MAX_SHARE_OF_LOAD * load_seconds, (max(during), load_seconds)
    with engine.connect() as conn:  # every answered intent is stored, once
        assert conn.execute(text("SELECT count(*) FROM cancel_intents")).scalar() == len(statuses)
        fks = conn.execute(
            text("SELECT count(*) FROM pg_constraint WHERE contype = 'f'")
        ).scalar_one()
    assert fks > 0
    assert load_raw(engine, full) == counts  # a reload of the same data stays idempotent
    engine.dispose()


@pytest.fixture()
def live_store(pg_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A Postgres store holding the tiny simulation, plus a bigger raw folder to load."""
    upgrade(pg_url)
    engine = make_engine(pg_url)
    simulate(TINY, tmp_path / "tiny" / "raw", tmp_path / "tiny" / "truth")
    load_raw(engine, tmp_path / "tiny" / "raw")
    engine.dispose()
    yield pg_url, tmp_path / "tiny" / "raw"


@contextmanager
def _hold(url: str, table: str, mode: str) -> Iterator[None]:
    """Another session holding `LOCK TABLE table IN mode` (gives up after 60 s if a regression
    makes the load queue behind it, so the test fails instead of hanging)."""
    holder = make_engine(url)
    with holder.connect() as conn:
        conn.execute(text("SET idle_in_transaction_session_timeout = '60s'"))
        conn.execute(text(f'LOCK TABLE "{table}" IN {mode} MODE'))
        yield
        conn.rollback()
    holder.dispose()


@pytest.mark.parametrize(
    ("table", "mode"),
    [("customers", "ACCESS EXCLUSIVE"), ("usage", "SHARE")],
    ids=["migration-before-load", "writers-blocked-mid-load"],
)
def test_load_facing_a_held_lock_fails_cleanly(
    live_store: tuple[str, Path], small_sim: Path, table: str, mode: str
) -> None:
    # ACCESS EXCLUSIVE on customers stops the load at its first read; SHARE on usage lets it
    # merge customers, subscriptions, invoices and payments first, then stops it at usage
    url, _ = live_store
    engine = make_engine(url)
    before = snapshot(engine)
    with _hold(url, table, mode), pytest.raises(UnavailableError) as err:
        load_raw(engine, small_sim / "raw", lock_timeout_ms=300)
    message = str(err.value)
    assert len(message.splitlines()) == 1
    assert "store busy" in message and "300 ms" in message and "lock_timeout_ms" in message
    assert snapshot(engine) == before  # all or nothing
    assert load_raw(engine, small_sim / "raw")["customers"] == 3_000  # lock gone: it loads
    engine.dispose()


def test_cli_load_facing_a_held_lock_is_one_line(
    live_store: tuple[str, Path], small_sim: Path, tmp_path: Path
) -> None:
    url, _ = live_store
    root = tmp_path / "project"
    shutil.copytree(small_sim / "raw", root / "data" / "raw")
    (root / "params.yaml").write_text("store:\n  lock_timeout_ms: 300\n")
    engine = make_engine(url)
    before = snapshot(engine)
    with _hold(url, "subscriptions", "ACCESS EXCLUSIVE"):
        result = subprocess.run(
            [sys.executable, "-m", "paycycle", "load"],
            env={**os.environ, "PAYCYCLE_ROOT": str(root), "PAYCYCLE_DATABASE_URL": url},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == EXIT_UNAVAILABLE, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: store busy"), result.stderr
    assert "300 ms" in lines[0] and "Traceback" not in result.stderr
    assert snapshot(engine) == before
    engine.dispose()


def test_a_vacuum_holding_statistics_locks_does_not_roll_back_a_live_load(
    live_store: tuple[str, Path], small_sim: Path
) -> None:
    # SHARE UPDATE EXCLUSIVE is what a (non-cancellable, anti-wraparound) VACUUM holds: it lets
    # the load's writes through but blocks ANALYZE, which a live load runs after its commit
    url, _ = live_store
    engine = make_engine(url)
    with _hold(url, "usage", "SHARE UPDATE EXCLUSIVE"):
        counts = load_raw(engine, small_sim / "raw", lock_timeout_ms=300)
    assert counts["customers"] == 3_000
    assert snapshot(engine)["customers"][0] == 3_000  # committed, statistics left to autovacuum
    engine.dispose()


def test_lock_timeout_must_be_positive(tmp_path: Path, small_sim: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'store.db'}")
    with pytest.raises(ConfigError, match="lock_timeout_ms: must be at least 1 ms, got 0"):
        load_raw(engine, small_sim / "raw", lock_timeout_ms=0)
    engine.dispose()
