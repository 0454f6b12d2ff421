"""The subscription store on the real PostgreSQL: migrations, COPY bulk load, round-trip,
idempotent reload, upserts of changed rows, and all-or-nothing loads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import inspect

from paycycle import loader
from paycycle.errors import DataError
from paycycle.loader import load_raw
from paycycle.sim.simulator import SimSpec, simulate
from paycycle.store import (
    RAW_LOAD_ORDER,
    Customer,
    current_revision,
    head_revision,
    make_engine,
    session_scope,
    upgrade,
)
from tests.code.test_store import assert_round_trip, parquet_counts
from tests.data.test_load_errors import snapshot, unknown_customer

pytestmark = pytest.mark.postgres


def _constraints(engine) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    """Foreign keys and plain indexes on the raw tables."""
    insp = inspect(engine)
    fks = sum(len(insp.get_foreign_keys(t)) for t in RAW_LOAD_ORDER)
    ixs = sum(len(insp.get_indexes(t)) for t in RAW_LOAD_ORDER)
    return fks, ixs


@pytest.mark.parametrize("bulk_rows", [loader.FK_BULK_ROWS, 1_000], ids=["triggers", "bulk"])
def test_upgrade_twice_load_round_trip_and_idempotent_reload(
    pg_url: str, small_sim: Path, bulk_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # bulk: foreign keys and plain indexes are dropped for the load and rebuilt before commit
    monkeypatch.setattr(loader, "FK_BULK_ROWS", bulk_rows)
    assert current_revision(pg_url) is None
    assert upgrade(pg_url) == head_revision()
    engine = make_engine(pg_url)
    tables = set(inspect(engine).get_table_names())
    assert set(RAW_LOAD_ORDER) | {"notices", "scores", "alembic_version"} <= tables
    assert upgrade(pg_url) == head_revision() == current_revision(pg_url)  # a no-op
    assert set(inspect(engine).get_table_names()) == tables
    schema = _constraints(engine)
    raw = small_sim / "raw"
    assert load_raw(engine, raw) == parquet_counts(raw)
    assert _constraints(engine) == schema
    assert_round_trip(engine, raw)
    before = snapshot(engine)
    assert load_raw(engine, raw) == parquet_counts(raw)  # merge path: nothing changes
    assert snapshot(engine) == before
    assert _constraints(engine) == schema
    engine.dispose()


def test_reload_upserts_changed_rows(pg_url: str, small_sim: Path, tmp_path: Path) -> None:
    upgrade(pg_url)
    engine = make_engine(pg_url)
    raw = tmp_path / "raw"
    shutil.copytree(small_sim / "raw", raw)
    counts = load_raw(engine, raw)
    part = raw / "customers" / "part-00001.parquet"
    df = pq.read_table(part).to_pandas()
    df.loc[3, "segment"] = "changed"
    df.to_parquet(part, index=False)
    assert load_raw(engine, raw) == counts
    with session_scope(engine) as session:
        assert session.get(Customer, int(df.loc[3, "customer_id"])).segment == "changed"
    engine.dispose()


@pytest.mark.parametrize("bulk_rows", [loader.FK_BULK_ROWS, 1_000], ids=["triggers", "bulk"])
def test_rejected_load_commits_nothing(
    pg_url: str, small_sim: Path, tmp_path: Path, bulk_rows: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(loader, "FK_BULK_ROWS", bulk_rows)
    upgrade(pg_url)
    engine = make_engine(pg_url)
    good = tmp_path / "good"
    simulate(SimSpec(customers=400, months=3, seed=5), good / "raw", good / "truth")
    load_raw(engine, good / "raw")
    before, schema = snapshot(engine), _constraints(engine)
    raw = tmp_path / "raw"
    shutil.copytree(small_sim / "raw", raw)
    part = raw / "adoptions" / "part-00002.parquet"
    pq.write_table(unknown_customer(pq.read_table(part)), part)
    with pytest.raises(DataError) as err:
        load_raw(engine, raw)
    # per-row checks name the part; the one-pass check after a bulk load names the table folder
    assert str(part if bulk_rows > 10_000 else raw / "adoptions") in str(err.value)
    assert "foreign key" in str(err.value)
    assert snapshot(engine) == before
    assert _constraints(engine) == schema
    engine.dispose()


def test_duplicate_keys_in_a_part_are_a_data_error(
    pg_url: str, small_sim: Path, tmp_path: Path
) -> None:
    upgrade(pg_url)
    engine = make_engine(pg_url)
    raw = tmp_path / "raw"
    shutil.copytree(small_sim / "raw", raw)
    part = raw / "offers" / "part-00000.parquet"
    table = pq.read_table(part)
    pq.write_table(pa.concat_tables([table, table.slice(0, 1)]), part)
    with pytest.raises(DataError, match=str(part)):
        load_raw(engine, raw)
    assert snapshot(engine)["customers"][0] == 0
    engine.dispose()
