"""The subscription store on SQLite: migrations, bulk load, round-trip of Parquet values."""

from __future__ import annotations

import datetime as dt
import math
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, inspect, select, tuple_
from sqlalchemy.exc import IntegrityError

from paycycle.loader import load_raw
from paycycle.store import (
    RAW_LOAD_ORDER,
    RAW_MODELS,
    Customer,
    Notice,
    Subscription,
    current_revision,
    head_revision,
    make_engine,
    normalize_url,
    session_scope,
    upgrade,
)
from paycycle.tables import read_table


def parquet_counts(raw_dir: Path) -> dict[str, int]:
    """Rows per raw table, from the Parquet footers."""
    return {
        name: sum(pq.ParquetFile(p).metadata.num_rows for p in (raw_dir / name).glob("*.parquet"))
        for name in RAW_LOAD_ORDER
    }


def _py(value: object) -> object:
    if value is None or value is pd.NaT or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return value.date()
    return value.item() if isinstance(value, np.generic) else value


def sample_rows(raw_dir: Path, name: str) -> pd.DataFrame:
    """The first rows of a table plus, per nullable column, one row with and one without a NULL."""
    df = read_table(raw_dir, name)
    table = RAW_MODELS[name].__table__
    picks = list(df.index[:3])
    for col in table.columns:
        if col.nullable:
            picks += list(df.index[df[col.name].isna()][:1]) + list(
                df.index[df[col.name].notna()][:1]
            )
    return df.loc[sorted(set(picks))]


def assert_round_trip(engine: Engine, raw_dir: Path) -> None:
    """Rows read back from the store equal the Parquet values, dates and NULLs included."""
    for name in RAW_LOAD_ORDER:
        table = RAW_MODELS[name].__table__
        expected = sample_rows(raw_dir, name)
        pk = [c.name for c in table.primary_key.columns]
        keys = [tuple(_py(v) for v in row) for row in expected[pk].itertuples(index=False)]
        with engine.connect() as conn:
            got = {
                tuple(r[c] for c in pk): dict(r)
                for r in conn.execute(
                    select(table).where(tuple_(*[table.c[c] for c in pk]).in_(keys))
                ).mappings()
            }
        assert len(got) == len(keys), name
        for row in expected.to_dict("records"):
            want = {c.name: _py(row[c.name]) for c in table.columns}
            assert got[tuple(want[c] for c in pk)] == want, name


@pytest.fixture()
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'store.db'}"


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory, small_sim: Path) -> Engine:
    """A SQLite store holding the small simulation, shared by the read-only tests below."""
    url = f"sqlite:///{tmp_path_factory.mktemp('store') / 'store.db'}"
    upgrade(url)
    engine = make_engine(url)
    load_raw(engine, small_sim / "raw")
    return engine


def test_upgrade_twice_is_a_noop(db_url: str) -> None:
    assert current_revision(db_url) is None
    assert upgrade(db_url) == head_revision()
    engine = make_engine(db_url)
    tables = set(inspect(engine).get_table_names())
    assert set(RAW_LOAD_ORDER) | {"notices", "scores", "alembic_version"} <= tables
    assert upgrade(db_url) == head_revision()
    assert set(inspect(engine).get_table_names()) == tables


def test_load_counts_equal_parquet(loaded: Engine, small_sim: Path) -> None:
    expected = parquet_counts(small_sim / "raw")
    assert expected["customers"] == 3_000 and expected["usage"] > 20_000
    assert load_raw(loaded, small_sim / "raw") == expected  # a second load changes nothing


def test_round_trip_matches_parquet(loaded: Engine, small_sim: Path) -> None:
    assert_round_trip(loaded, small_sim / "raw")


def test_reload_updates_changed_rows(tmp_path: Path, small_sim: Path, db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    raw = tmp_path / "raw"
    shutil.copytree(small_sim / "raw", raw)
    counts = load_raw(engine, raw)
    part = raw / "customers" / "part-00000.parquet"
    df = pq.read_table(part).to_pandas()
    df.loc[0, "segment"] = "enterprise-changed"
    df.to_parquet(part, index=False)
    assert load_raw(engine, raw) == counts
    with session_scope(engine) as session:
        assert session.get(Customer, int(df.loc[0, "customer_id"])).segment == "enterprise-changed"


def test_foreign_keys_are_enforced(loaded: Engine) -> None:
    with pytest.raises(IntegrityError), session_scope(loaded) as session:
        session.add(
            Subscription(
                subscription_id=10**9,
                customer_id=10**9,
                plan_id=1,
                cycle="monthly",
                start_date=dt.date(2025, 1, 1),
                billing_day=1,
                status="active",
                addons="",
            )
        )


def test_notice_outbox_dedup_and_aware_timestamps(loaded: Engine) -> None:
    def notice() -> Notice:
        return Notice(
            customer_id=1,
            kind="upcoming_charge",
            cycle_date=dt.date(2026, 1, 5),
            dedup_key="1:upcoming_charge:2026-01-05",
            channel="email",
            locale="en",
            payload={"amount": 19.0},
        )

    with session_scope(loaded) as session:
        session.add(notice())
    with session_scope(loaded) as session:
        row = session.scalars(select(Notice)).one()
        assert row.status == "pending" and row.attempts == 0 and row.payload == {"amount": 19.0}
        assert row.created_at.tzinfo is not None
        assert abs(row.created_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
    with pytest.raises(IntegrityError), session_scope(loaded) as session:
        session.add(notice())


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgres://u@h/db", "postgresql+psycopg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
        ("sqlite:///x.db", "sqlite:///x.db"),
    ],
)
def test_normalize_url(url: str, expected: str) -> None:
    assert normalize_url(url) == expected
