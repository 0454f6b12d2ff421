"""Bad raw data never half-loads: schema errors name file and column before anything is written,
database rejections roll the whole load back, and the CLI reports one line with exit code 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sqlalchemy import Engine, text

from paycycle.errors import EXIT_DATA, DataError
from paycycle.loader import load_raw
from paycycle.sim.simulator import SimSpec, simulate
from paycycle.store import RAW_LOAD_ORDER, make_engine, upgrade

TINY = SimSpec(customers=400, months=3, seed=5)


def snapshot(engine: Engine) -> dict[str, tuple[int, str]]:
    """Row count and a content digest per raw table."""
    out = {}
    with engine.connect() as conn:
        for name in RAW_LOAD_ORDER:
            rows = conn.execute(text(f'SELECT * FROM "{name}" ORDER BY 1, 2')).all()
            out[name] = (len(rows), str(hash(tuple(rows))))
    return out


@pytest.fixture()
def store(tmp_path: Path) -> tuple[str, Engine]:
    """A SQLite store already holding a tiny simulation (the 'good data')."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    upgrade(url)
    engine = make_engine(url)
    good = tmp_path / "good" / "data"
    simulate(TINY, good / "raw", good / "truth")
    load_raw(engine, good / "raw")
    return url, engine


@pytest.fixture()
def raw(tmp_path: Path, small_sim: Path) -> Path:
    """A writable copy of the small simulation: more customers than the store holds, so a
    partial load would show in the counts."""
    shutil.copytree(small_sim / "raw", tmp_path / "data" / "raw")
    return tmp_path / "data" / "raw"


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def rewrite(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    table = pq.read_table(path)
    pq.write_table(change(table), path)


def amount_as_string(table: pa.Table) -> pa.Table:
    i = table.schema.get_field_index("amount")
    return table.set_column(i, "amount", table["amount"].cast(pa.string()))


def unknown_customer(table: pa.Table) -> pa.Table:
    ids = table["customer_id"].to_pylist()
    ids[-1] = 10**9
    return table.set_column(0, "customer_id", pa.array(ids, pa.int64()))


@pytest.mark.parametrize(
    ("table", "breakage", "column"),
    [
        ("adoptions", "truncated", None),
        ("invoices", "amount_as_string", "amount"),
        ("payments", "amount_as_string", "amount"),
        ("customers", "drop_segment", "segment"),
    ],
)
def test_schema_errors_name_file_and_column(
    store: tuple[str, Engine], raw: Path, table: str, breakage: str, column: str | None
) -> None:
    _, engine = store
    before = snapshot(engine)
    part = raw / table / "part-00002.parquet"
    if breakage == "truncated":
        truncate(part)
    elif breakage == "amount_as_string":
        rewrite(part, amount_as_string)
    else:
        rewrite(part, lambda t: t.drop_columns([column]))
    with pytest.raises(DataError) as err:
        load_raw(engine, raw)
    assert str(part) in str(err.value)
    if column:
        assert f"'{column}'" in str(err.value)
    assert snapshot(engine) == before


def test_database_rejection_mid_load_rolls_everything_back(
    store: tuple[str, Engine], raw: Path
) -> None:
    # adoptions load last: customers, invoices, usage... are already written when this fails
    _, engine = store
    before = snapshot(engine)
    part = raw / "adoptions" / "part-00001.parquet"
    rewrite(part, unknown_customer)
    with pytest.raises(DataError) as err:
        load_raw(engine, raw)
    assert str(part) in str(err.value) and "FOREIGN KEY" in str(err.value)
    assert snapshot(engine) == before
    rewrite(part, lambda t: t.slice(0, t.num_rows - 1))  # repaired data then loads fine
    assert load_raw(engine, raw)["customers"] == 3_000


def _cli(root: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PAYCYCLE_ROOT": str(root), "PAYCYCLE_DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "-m", "paycycle", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_load_bad_data_is_one_line_data_error(store: tuple[str, Engine], raw: Path) -> None:
    url, engine = store
    before = snapshot(engine)
    part = raw / "invoices" / "part-00001.parquet"
    rewrite(part, amount_as_string)
    result = _cli(raw.parent.parent, url, "load")
    assert result.returncode == EXIT_DATA, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert str(part) in lines[0] and "'amount'" in lines[0]
    assert "Traceback" not in result.stderr
    assert snapshot(engine) == before


def test_cli_load_good_data(store: tuple[str, Engine], tmp_path: Path) -> None:
    url, engine = store
    before = snapshot(engine)
    result = _cli(tmp_path / "good", url, "load")  # the data the store already holds
    assert result.returncode == 0, result.stderr
    assert "customers" in result.stdout and f"{TINY.customers:,}" in result.stdout
    assert snapshot(engine) == before
    current = _cli(tmp_path / "good", url, "db", "current")
    assert current.returncode == 0 and "up to date" in current.stdout


@pytest.mark.postgres
def test_repeated_key_in_a_live_postgres_load_is_rejected(pg_url: str, tmp_path: Path) -> None:
    """A part repeating a customer (the second row changed) into a live store: one DataError
    naming the part, nothing written; neither row may win silently."""
    upgrade(pg_url)
    engine = make_engine(pg_url)
    good = tmp_path / "good"
    simulate(TINY, good / "raw", good / "truth")
    load_raw(engine, good / "raw")  # the store is live: the merge path, not the first COPY
    before = snapshot(engine)
    part = sorted((good / "raw" / "customers").glob("part-*.parquet"))[0]
    table = pq.read_table(part)
    twin = table.slice(0, 1)
    i = twin.schema.get_field_index("segment")
    twin = twin.set_column(i, "segment", pa.array(["changed"], twin.schema.field(i).type))
    pq.write_table(pa.concat_tables([table, twin]), part)
    with pytest.raises(DataError) as err:
        load_raw(engine, good / "raw")
    assert str(part) in str(err.value) and "duplicate key" in str(err.value)
    assert snapshot(engine) == before
    engine.dispose()
