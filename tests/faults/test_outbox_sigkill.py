"""A delivery worker SIGKILLed mid-batch on the real PostgreSQL and on SQLite, with a channel
that cannot de-duplicate (like SMTP): the re-run sends at most one message a second time, loses
none. Both stores run the same marks (`notify.outbox._Marks`: one compiled statement on the
driver's cursor, autocommitted), so each backend proves its mark is durable before the next send.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import text

from notify.channels import FileChannel, read_outbox_file
from notify.outbox import deliver, utcnow
from paycycle.config import NotifyParams
from paycycle.store import make_engine, upgrade
from tests.faults.seed import seed_charges

pytestmark = pytest.mark.integration
WORKER = Path(__file__).resolve().parents[1] / "integration" / "notify_worker.py"
N, BATCH = 600, 200


def statuses(engine) -> Counter:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, count(*) FROM notices GROUP BY 1")).all()
    return Counter({s: n for s, n in rows})


def keys(path: Path) -> Counter:
    return Counter(r["dedup_key"] for r in read_outbox_file(path))


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres), "sqlite"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    return request.getfixturevalue("pg_url")


@pytest.mark.parametrize("kill_after", [BATCH // 2, BATCH + 37])
def test_sigkilled_sender_resends_at_most_one(store_url: str, tmp_path: Path, kill_after) -> None:
    upgrade(store_url)
    engine = make_engine(store_url)
    assert seed_charges(engine, {i: f"c{i}@example.com" for i in range(1, N + 1)}, "file").inserted
    first, second = tmp_path / "first", tmp_path / "second"
    out = first / "notices.jsonl"
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), store_url, str(first), out.name, str(BATCH), "0.005"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (out.exists() and out.read_bytes().count(b"\n") >= kill_after):
        assert proc.poll() is None, "worker finished before it could be killed"
        assert time.monotonic() < deadline, "worker too slow"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)  # mid-batch: in the middle of a 200-message claim
    proc.wait()
    written = len(keys(out))
    at_kill = statuses(engine)
    assert written < N and at_kill["sending"] > 0
    # every message the channel took is recorded but (at most) the one being marked
    assert written - 1 <= at_kill["sent"] <= written
    # a second sender on a separate file: nothing de-duplicates for it, as with SMTP
    later = utcnow() + dt.timedelta(seconds=NotifyParams().lease_seconds + 1)
    stats = deliver(
        engine, FileChannel(second), NotifyParams(batch_size=BATCH), clock=lambda: later
    )
    again = keys(second / "notices.jsonl")
    resent = set(keys(out)) & set(again)
    assert len(resent) <= 1, f"{len(resent)} messages sent twice"
    assert set(keys(out)) | set(again) == {
        f"{i}:upcoming_charge:2025-03-13" for i in range(1, N + 1)
    }
    assert stats.sent == N - written + len(resent)
    assert statuses(engine) == Counter(sent=N)
    engine.dispose()
