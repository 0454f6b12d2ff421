"""Simulator throughput (100k and 1M customers × 12 months) and PostgreSQL bulk-load rows/s.

Run: `python -m benchmarks.bench_simulator [--quick]`. The load part needs PostgreSQL on
127.0.0.1:5432 (the same server the tests use); it loads into a scratch database and drops it.
"""

from __future__ import annotations

import argparse
import tempfile
import uuid
from pathlib import Path

from benchmarks.common import timer, write_result
from paycycle.sim.simulator import SimSpec, simulate

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def time_simulation(customers: int, months: int, out: Path) -> float:
    with timer() as t:
        simulate(SimSpec(customers=customers, months=months, seed=1), out / "raw", out / "truth")
    return t["seconds"]


def time_pg_load(raw_dir: Path, live: bool = False) -> tuple[float, int]:
    """Seconds and rows for `load_raw` into a fresh Postgres database.

    `live`: the store first holds the first quarter of the customers with all their rows (so
    it is live and the load takes the no-DDL path, foreign keys checked per row); only the full
    load is timed.
    """
    import tempfile

    import pyarrow.compute as pc
    import pyarrow.parquet as pq
    from sqlalchemy import create_engine, text

    from paycycle.loader import load_raw
    from paycycle.store import RAW_LOAD_ORDER, make_engine, upgrade

    name = f"paycycle_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        engine = make_engine(url)
        if live:
            with tempfile.TemporaryDirectory() as tmp:
                for table in RAW_LOAD_ORDER:
                    data = pq.read_table(raw_dir / table)
                    if "customer_id" in data.column_names:
                        cut = pc.max(data["customer_id"]).as_py() // 4
                        data = data.filter(pc.less_equal(data["customer_id"], cut))
                    (Path(tmp) / table).mkdir()
                    pq.write_table(data, Path(tmp) / table / "part-00000.parquet")
                load_raw(engine, Path(tmp))
        with timer() as t:
            rows = load_raw(engine, raw_dir)
        engine.dispose()
        return t["seconds"], sum(rows.values())
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--quick", action="store_true", help="20k/100k customers instead of 100k/1M"
    )
    args = parser.parse_args()
    small, large = (20_000, 100_000) if args.quick else (100_000, 1_000_000)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        s_small = time_simulation(small, 12, root / "small")
        s_large = time_simulation(large, 12, root / "large")
        load_s, load_rows = time_pg_load(root / "small" / "raw")
        live_s, live_rows = time_pg_load(root / "small" / "raw", live=True)
    metrics = {
        "customers_per_s": large / s_large,
        "customers_per_s_100k": small / s_small,
        "seconds_1m_customers_12m": s_large * 1_000_000 / large,
        "pg_load_rows_per_s": load_rows / load_s,
        "pg_load_rows": load_rows,
        "pg_load_seconds": load_s,
        # into a live store (no DDL, per-row foreign-key checks, serving keeps working)
        "pg_live_load_rows_per_s": live_rows / live_s,
        "pg_live_vs_empty_load_ratio": live_s / load_s,
    }
    path = write_result(
        "simulator",
        {"small": small, "large": large, "months": 12, "pg_load_customers": small},
        metrics,
        {"seconds_1m_customers_12m": "<= 180"},
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
