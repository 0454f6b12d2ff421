"""Billing monitor on PostgreSQL: scan 1M subscriptions for a day's notices, deliver with the
file channel, and count duplicates / lost notices across a re-run and a SIGKILLed worker.

Run: `python -m benchmarks.bench_notify [--subscriptions N] [--llm-notices N]`. The store is
generated set-based inside PostgreSQL (`generate_series`), so only the scan is measured, not the
simulator.

Delivery records each message's outcome before the next send (at most one duplicate per killed
sender), so `deliver_per_s` is bound by one mark round trip per message: measured on PostgreSQL
for the day's notices and, as `deliver_per_s_sqlite`, for `--sqlite-notices` upcoming-charge
notices in a temp SQLite store (the other backend the outbox supports).

Personalised text (`notify.personalise`): `--llm-notices` of the day's notices (amounts made
distinct, so each one is a model call, not a cache hit) go through the generation step against
the stand-in OpenAI-compatible server of the tests (`tests/llm_standin.py`) answering in a fixed
50 ms, at the configured `notify.llm.max_concurrency`, MLflow prompts and traces in a temp SQLite
store: `llm_generated_per_s` (notices given model text per second, tracing and cache writes
included; the trace export itself runs in the background and is timed apart as
`llm_trace_flush_seconds`), `llm_fallback_rate`, and `llm_vs_ideal` (÷ concurrency / answer
time, for context).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import create_engine, select, text

from benchmarks.common import timer, write_result
from notify.channels import FileChannel, read_outbox_file
from notify.cycles import due_notices
from notify.outbox import deliver, enqueue, notices, utcnow
from paycycle import catalog
from paycycle.config import NotifyParams
from paycycle.store import make_engine, upgrade

ADMIN = os.environ.get("PAYCYCLE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
DB = "paycycle_bench_notify"
AS_OF = dt.date(2025, 2, 10)
WORKER = Path(__file__).resolve().parents[1] / "tests" / "integration" / "notify_worker.py"

FILL = """
INSERT INTO customers
SELECT i, DATE '2023-01-01', (ARRAY['BR','US','GB','DE','MX'])[1 + i % 5],
       (ARRAY['BRL','USD','GBP','EUR','MXN'])[1 + i % 5],
       (ARRAY['pt-BR','en','en','en','en'])[1 + i % 5],
       'customer' || i || '@example.com', 'organic', 'smb'
FROM generate_series(1, :n) AS i;
INSERT INTO subscriptions
SELECT i, i, 1 + i % 4, CASE WHEN i % 5 = 0 THEN 'annual' ELSE 'monthly' END,
       make_date(2023 + i % 2, 1 + (i / 28) % 12, 1 + i % 28), 1 + i % 28,
       CASE WHEN i % 50 = 0 THEN 'cancelled' ELSE 'active' END, NULL, NULL,
       CASE WHEN i % 50 = 0 THEN DATE '2025-01-15' END,
       CASE WHEN i % 3 = 0 THEN 'analytics' ELSE '' END
FROM generate_series(1, :n) AS i;
INSERT INTO invoices
SELECT i * 10, i, i, d, d, 49.0, 'USD', CASE WHEN i % 40 = 0 THEN 'failed' ELSE 'paid' END, NULL,
       CASE WHEN i % 40 = 0 THEN 4 ELSE 1 END
FROM generate_series(1, :n) AS i, LATERAL (SELECT make_date(2025, 2, 1 + i % 28) AS d) AS x;
INSERT INTO payments
SELECT i * 100 + k, i * 10, i, k, make_date(2025, 2, 1 + i % 28) + (ARRAY[0,1,3,7])[k + 1], 49.0,
       CASE WHEN i % 40 = 0 THEN 'failed' ELSE 'paid' END,
       CASE WHEN i % 40 = 0 THEN 'insufficient_funds' END
FROM generate_series(1, :n) AS i, generate_series(0, 3) AS k
WHERE k = 0 OR i % 40 = 0;
"""


def fresh_db(n: int) -> str:
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{DB}"'))
    admin.dispose()
    url = ADMIN.rsplit("/", 1)[0] + f"/{DB}"
    upgrade(url)
    engine = make_engine(url)
    with engine.begin() as conn:
        for p in catalog.plans_frame().to_dict("records"):
            conn.execute(
                text(
                    "INSERT INTO plans VALUES (:plan_id, :name, :tier, :monthly_price, "
                    ":included_units, :annual_price, :addons)"
                ),
                p,
            )
        for a in catalog.addons_frame().to_dict("records"):
            conn.execute(
                text("INSERT INTO addons VALUES (:addon_id, :name, :monthly_price, :signal)"), a
            )
        for stmt in FILL.split(";"):
            if stmt.strip():
                conn.execute(text(stmt), {"n": n})
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return url


def crash_run(url: str, engine, params: NotifyParams, out_dir: Path) -> dict[str, int]:
    """Enqueue a day twice, SIGKILL a delivery worker mid-batch, re-run: count dups and losses."""
    day = AS_OF + dt.timedelta(days=1)
    due = due_notices(engine, day, params)
    first = enqueue(engine, due, "file")
    again = enqueue(engine, due, "file")
    out = out_dir / "crash.jsonl"
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), url, str(out_dir), out.name, "500", "0.0005"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= min(1200, first.inserted // 2):
            break
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_after = len(read_outbox_file(out))
    later = utcnow() + dt.timedelta(seconds=params.lease_seconds + 1)
    deliver(engine, FileChannel(out_dir, out.name), params, clock=lambda: later)
    keys = Counter(r["dedup_key"] for r in read_outbox_file(out))
    with engine.connect() as conn:
        c = notices.c
        rows = conn.execute(select(c.dedup_key, c.status).where(c.cycle_date >= day)).all()
    day_keys = set(due["dedup_key"])
    return {
        "crash_notices": first.inserted,
        "crash_written_before_kill": killed_after,
        "duplicates": sum(v - 1 for v in keys.values()) + again.inserted,
        "lost": sum(1 for k, s in rows if k in day_keys and s != "dead" and k not in keys),
    }


def sqlite_deliver_run(n: int, params: NotifyParams, tmp: Path) -> float:
    """Notices delivered per second from a SQLite store holding `n` due notices."""
    from tests.faults.seed import seed_charges

    url = f"sqlite:///{tmp / 'store.db'}"
    upgrade(url)
    engine = make_engine(url)
    seed_charges(engine, {i: f"customer{i}@example.com" for i in range(1, n + 1)}, "file")
    with timer() as t:
        stats = deliver(engine, FileChannel(tmp / "sqlite_outbox"), params)
    engine.dispose()
    return stats.sent / t["seconds"]


def llm_run(url: str, engine, due, n: int, latency: float, tmp: Path) -> dict[str, float]:
    """The generation step for `n` due notices against a stand-in server answering in `latency`."""
    import mlflow

    from notify.personalise import personalise
    from paycycle import config
    from tests.llm_standin import StandIn

    rows = []
    for i, rec in enumerate(due.head(n).to_dict("records")):
        payload = {**rec["payload"], "amount": 10.0 + i / 100}  # distinct facts: no cache hits
        rows.append({**rec, "payload": payload})
    server = StandIn(latency=latency).start()
    try:
        settings = config.load(
            database_url=url,
            mlflow_tracking_uri=f"sqlite:///{tmp / 'mlflow.db'}",
            llm_url=server.url,
            llm_model="stand-in",
        )
        personalise(engine, settings, rows[:1])  # prompts registered, MLflow store created
        with timer() as t:
            _, stats = personalise(engine, settings, rows[1:])
        with timer() as flush:  # traces go out in the background while delivery runs
            mlflow.flush_trace_async_logging()
    finally:
        server.stop()
    concurrency = settings.params.notify.llm.max_concurrency
    per_s = stats.generated / t["seconds"]
    return {
        "llm_notices": len(rows) - 1,
        "llm_calls": server.calls - 1,
        "llm_generated": stats.generated,
        "llm_fallback_rate": stats.fallback_rate,
        "llm_generated_per_s": per_s,
        "llm_concurrency": concurrency,
        "llm_answer_ms": latency * 1000,
        "llm_vs_ideal": per_s / (concurrency / latency),
        "llm_trace_flush_seconds": flush["seconds"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscriptions", type=int, default=1_000_000)
    parser.add_argument("--llm-notices", type=int, default=500)
    parser.add_argument("--llm-latency", type=float, default=0.05)
    parser.add_argument("--sqlite-notices", type=int, default=10_000)
    args = parser.parse_args()
    with timer() as gen:
        url = fresh_db(args.subscriptions)
    engine = make_engine(url)
    params = NotifyParams()
    scans = []
    for _ in range(3):
        with timer() as t:
            due = due_notices(engine, AS_OF, params)
        scans.append(t["seconds"])
    scan = sorted(scans)[1]
    with timer() as enq:
        enqueue(engine, due, "file")
    with tempfile.TemporaryDirectory() as tmp:
        with timer() as dlv:
            stats = deliver(engine, FileChannel(Path(tmp)), params)
        crash = crash_run(url, engine, params, Path(tmp))
        deliver_sqlite = sqlite_deliver_run(args.sqlite_notices, params, Path(tmp))
        # MLflow's exporter may still write after the flush: its store outlives the temp dir
        mlflow_dir = Path(tempfile.mkdtemp(prefix="bench_notify_mlflow_"))
        llm = llm_run(url, engine, due, args.llm_notices + 1, args.llm_latency, mlflow_dir)
    engine.dispose()
    path = write_result(
        "notify",
        {
            "subscriptions": args.subscriptions,
            "as_of": AS_OF.isoformat(),
            "backend": "postgresql",
            "batch_size": params.batch_size,
            "llm_notices": args.llm_notices,
            "llm_answer_ms": args.llm_latency * 1000,
            "llm_max_concurrency": params.llm.max_concurrency,
            "sqlite_notices": args.sqlite_notices,
        },
        {
            "scan_seconds_1m": scan * 1_000_000 / args.subscriptions,
            "scan_seconds": scan,
            "scan_rows_per_s": args.subscriptions / scan,
            "notices_due": len(due),
            "enqueue_per_s": len(due) / enq["seconds"],
            "deliver_per_s": stats.sent / dlv["seconds"],
            "delivered": stats.sent,
            "deliver_per_s_sqlite": deliver_sqlite,
            "generate_seconds": gen["seconds"],
            **crash,
            **llm,
        },
        {
            "scan_seconds_1m": "<= 60",
            "duplicates": "== 0",
            "lost": "== 0",
            "deliver_per_s": ">= 500",
            "deliver_per_s_sqlite": ">= 500",
            "llm_fallback_rate": "<= 0.01",
            "llm_generated_per_s": ">= 10",
        },
    )
    print(path.read_text())
    admin = create_engine(ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)'))
    admin.dispose()


if __name__ == "__main__":
    main()
