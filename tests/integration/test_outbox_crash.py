"""Outbox guarantees on the real PostgreSQL: idempotent days, SIGKILL mid-batch, concurrent
workers, a flaky channel and bad data — every notice sent exactly once or dead with a reason."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select, text

from notify.channels import FileChannel, Message, TransientDeliveryError, read_outbox_file
from notify.cycles import due_notices
from notify.outbox import deliver, enqueue, notices, utcnow
from paycycle.config import NotifyParams
from paycycle.loader import load_raw
from paycycle.sim.simulator import SimSpec, simulate
from paycycle.store import make_engine, upgrade

pytestmark = [pytest.mark.postgres, pytest.mark.integration]
WORKER = Path(__file__).resolve().parent / "notify_worker.py"
START = dt.date(2025, 1, 1)
PARAMS = NotifyParams()


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("notify_sim")
    simulate(
        SimSpec(customers=2_000, months=2, seed=23, chunk_customers=2_000), root / "raw", root / "t"
    )
    return root / "raw"


@pytest.fixture()
def store(pg_url: str, sim: Path):
    upgrade(pg_url)
    engine = make_engine(pg_url)
    load_raw(engine, sim)
    yield engine
    engine.dispose()


def enqueue_days(engine, days: int, channel: str = "file") -> int:
    total = 0
    for d in range(days):
        due = due_notices(engine, START + dt.timedelta(days=d), PARAMS)
        total += enqueue(engine, due, channel).inserted
    return total


def statuses(engine) -> Counter:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, count(*) FROM notices GROUP BY 1")).all()
    return Counter({s: n for s, n in rows})


def all_keys(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(notices.c.dedup_key)).scalars())


def file_keys(path: Path) -> Counter:
    return Counter(r["dedup_key"] for r in read_outbox_file(path))


def test_day_twice_gives_no_duplicates(store, tmp_path: Path) -> None:
    day = START + dt.timedelta(days=9)
    first = enqueue(store, due_notices(store, day, PARAMS), "file")
    again = enqueue(store, due_notices(store, day, PARAMS), "file")
    assert first.inserted > 20 and again.inserted == 0 and again.duplicates == first.inserted
    channel = FileChannel(tmp_path)
    assert deliver(store, channel, PARAMS).sent == first.inserted
    enqueue(store, due_notices(store, day, PARAMS), "file")
    assert deliver(store, channel, PARAMS).sent == 0
    keys = file_keys(tmp_path / "notices.jsonl")
    assert max(keys.values()) == 1 and set(keys) == all_keys(store)
    assert statuses(store) == Counter(sent=first.inserted)


def wait_for_lines(path: Path, n: int, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= n:
            return
        assert proc.poll() is None, "worker finished before it could be killed"
        time.sleep(0.02)
    pytest.fail(f"worker wrote fewer than {n} lines in {timeout}s")


def test_sigkill_mid_batch_then_rerun_sends_each_once(store, pg_url: str, tmp_path: Path) -> None:
    total = enqueue_days(store, 20)
    assert total > 600
    out = tmp_path / "notices.jsonl"
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), pg_url, str(tmp_path), out.name, "200", "0.004"],
        stdout=subprocess.PIPE,
    )
    wait_for_lines(out, 300, proc)  # past the first batch, inside the second
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = statuses(store)
    assert before["sending"] > 0 and before["sent"] > 0  # killed between send and mark
    written = len(file_keys(out))
    # the dead worker's lease must run out; a live worker re-claims and finishes
    later = utcnow() + dt.timedelta(seconds=PARAMS.lease_seconds + 1)
    stats = deliver(store, FileChannel(tmp_path), PARAMS, clock=lambda: later)
    keys = file_keys(out)
    assert max(keys.values()) == 1, "a notice was written twice"
    assert set(keys) == all_keys(store), "a notice was lost"
    # outcomes are recorded per message: only the one being marked at the kill can come back
    assert stats.already_delivered <= 1
    assert stats.sent + written == total
    assert statuses(store) == Counter(sent=total)


def test_two_concurrent_workers_never_send_the_same_notice(store, pg_url: str, tmp_path) -> None:
    total = enqueue_days(store, 20)
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), pg_url, str(tmp_path), f"w{i}.jsonl", "25", "0.001"],
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    # separate files, so the file channel's own de-duplication cannot hide a double claim
    a, b = (file_keys(tmp_path / f"w{i}.jsonl") for i in range(2))
    assert max(a.values()) == 1 and max(b.values()) == 1
    assert not set(a) & set(b), "both workers sent the same notice"
    assert len(a) > 0 and len(b) > 0, f"no overlap in time: {outs}"
    assert set(a) | set(b) == all_keys(store) and len(a) + len(b) == total
    assert statuses(store) == Counter(sent=total)


class FlakyChannel(FileChannel):
    """Fails 30% of sends (seeded) before touching the file."""

    def __init__(self, outbox_dir: Path, seed: int = 7, rate: float = 0.3) -> None:
        super().__init__(outbox_dir)
        self.rng, self.rate = random.Random(seed), rate

    def send(self, message: Message) -> bool:
        if self.rng.random() < self.rate:
            raise TransientDeliveryError("simulated outage")
        return super().send(message)


def test_flaky_channel_and_bad_data_lose_nothing(store, tmp_path: Path) -> None:
    day = START + dt.timedelta(days=4)
    charge = day + dt.timedelta(days=PARAMS.upcoming_days)
    with store.begin() as conn:  # bad data: one plan without a valid price
        conn.execute(text("INSERT INTO plans VALUES (99, 'broken', 9, 'NaN', 1, 'NaN', '')"))
        victim = conn.execute(
            text(
                "SELECT subscription_id FROM subscriptions WHERE cycle='monthly' AND billing_day=:d"
                " AND start_date < :s AND cancelled_at IS NULL LIMIT 1"
            ),
            {"d": charge.day, "s": day},
        ).scalar_one()
        conn.execute(
            text("UPDATE subscriptions SET plan_id=99 WHERE subscription_id=:v"), {"v": victim}
        )
    offers = pd.DataFrame(  # bad data: a timezone-less timestamp where tz-aware is required
        {
            "customer_id": [1, 2],
            "as_of": [day, day],
            "offer_type": ["free_month", "discount_10"],
            "expires_at": [pd.Timestamp("2025-02-01 00:00"), pd.Timestamp("2025-02-01", tz="UTC")],
        }
    )
    total = 0
    for d in range(20):
        on = START + dt.timedelta(days=d)
        due = due_notices(store, on, PARAMS, offers=offers if on == day else None)
        total += enqueue(store, due, "file").inserted
    base = utcnow()
    channel = FlakyChannel(tmp_path)
    for i in range(40):  # each round is a day later: every backoff has expired
        stats = deliver(store, channel, PARAMS, clock=lambda i=i: base + dt.timedelta(days=i))
        if stats.batches == 0:
            break
    with store.connect() as conn:
        rows = pd.DataFrame(
            conn.execute(
                select(
                    notices.c.dedup_key,
                    notices.c.status,
                    notices.c.last_error,
                    notices.c.attempts,
                    notices.c.subscription_id,
                    notices.c.customer_id,
                    notices.c.kind,
                )
            )
            .mappings()
            .all()
        )
    assert len(rows) == total
    assert set(rows["status"]) <= {"sent", "dead"}, rows["status"].value_counts()
    dead = rows[rows["status"] == "dead"]
    assert dead["last_error"].str.len().gt(0).all()
    assert (rows.loc[rows["status"] == "sent", "attempts"] > 1).any()  # retries happened
    flaky_dead = dead[dead["last_error"].str.contains("simulated outage")]
    assert (flaky_dead["attempts"] == PARAMS.max_attempts).all()
    price = dead[dead["subscription_id"] == victim]
    assert len(price) == 1 and "no valid price" in price["last_error"].iloc[0]
    naive = dead[(dead["kind"] == "retention_offer") & (dead["customer_id"] == 1)]
    assert len(naive) == 1 and "timezone" in naive["last_error"].iloc[0]
    assert ((rows["kind"] == "retention_offer") & (rows["status"] == "sent")).sum() == 1
    keys = file_keys(tmp_path / "notices.jsonl")
    assert max(keys.values()) == 1
    assert set(keys) == set(rows.loc[rows["status"] == "sent", "dedup_key"])


def test_sqlite_computes_the_same_notices_and_delivers_once(store, sim: Path, tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    lite = make_engine(url)
    load_raw(lite, sim)
    channel = FileChannel(tmp_path)
    for d in range(10):
        day = START + dt.timedelta(days=d)
        on_pg, on_lite = due_notices(store, day, PARAMS), due_notices(lite, day, PARAMS)
        assert list(on_pg["dedup_key"]) == list(on_lite["dedup_key"])
        assert list(on_pg["payload"]) == list(on_lite["payload"])
        enqueue(lite, on_lite, "file")
        assert enqueue(lite, on_lite, "file").inserted == 0
        deliver(lite, channel, PARAMS)
    keys = file_keys(tmp_path / "notices.jsonl")
    assert max(keys.values()) == 1 and set(keys) == all_keys(lite)
    assert set(statuses(lite)) == {"sent"}
    lite.dispose()
