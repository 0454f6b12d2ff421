"""Batch-scoring I/O without models: partitions, atomic partition files, idempotent upserts."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from sqlalchemy import text

from inference.score_io import (
    clear_stale,
    list_partitions,
    load_partition,
    partition_dir,
    read_scores,
    upsert_scores,
    write_partition,
)
from paycycle.config import Settings
from paycycle.errors import EXIT_DATA, EXIT_USAGE, DataError
from paycycle.loader import load_raw
from paycycle.store import head_revision, make_engine, upgrade
from tests.conftest import PROJECT_ROOT, env_without_prefect, run_python

AS_OF = dt.date(2025, 10, 1)


def _scores(ids: list[int], p: float, recs: bool = True) -> pd.DataFrame:
    rec = json.dumps([{"item": "addon:analytics", "kind": "addon", "score": 0.4}])
    return pd.DataFrame(
        {
            "customer_id": ids,
            "as_of": AS_OF,
            "churn_probability": p,
            "recommendations": [rec if recs else None] * len(ids),
            "churn_model_version": "3",
            "recommender_model_version": "1" if recs else None,
            "prediction_id": [f"{i:032x}" for i in ids],
        }
    )


def test_partitions_follow_the_customer_chunks(project: Settings) -> None:
    parts = list_partitions(project.raw_dir)
    assert parts == ["part-00000", "part-00001", "part-00002"]  # 3k customers, 1k per chunk
    events = load_partition(project.raw_dir, "part-00001")
    ids = events["customers"]["customer_id"]
    assert ids.min() == 1_001 and ids.max() == 2_000
    for name, frame in events.items():
        if "customer_id" in frame and len(frame):
            assert frame["customer_id"].between(1_001, 2_000).all(), name


def test_missing_partition_file_is_named(project: Settings) -> None:
    (project.raw_dir / "payments" / "part-00002.parquet").unlink()
    with pytest.raises(DataError, match=r"payments/part-00002\.parquet: partition file is missing"):
        list_partitions(project.raw_dir)


def test_partition_file_is_replaced_and_stale_ones_removed(tmp_path: Path) -> None:
    write_partition(_scores([1, 2], 0.1), tmp_path, AS_OF, "part-00000")
    write_partition(_scores([1, 2], 0.2), tmp_path, AS_OF, "part-00000")  # a retry
    write_partition(_scores([9], 0.3), tmp_path, AS_OF, "part-00007")  # an older chunking
    assert clear_stale(tmp_path, AS_OF, ["part-00000"]) == [
        partition_dir(tmp_path, AS_OF) / "part-00007.parquet"
    ]
    assert sorted(p.name for p in partition_dir(tmp_path, AS_OF).iterdir()) == [
        "part-00000.parquet"
    ]
    got = read_scores(tmp_path, AS_OF)
    assert got["churn_probability"].tolist() == [0.2, 0.2]
    schema = pq.read_schema(partition_dir(tmp_path, AS_OF) / "part-00000.parquet")
    assert str(schema.field("as_of").type) == "date32[day]"


def test_upsert_twice_keeps_one_row_per_customer_and_date(project: Settings) -> None:
    upgrade(project)
    engine = make_engine(project.db_url)
    load_raw(engine, project.raw_dir)
    src = Path("part-00000.parquet")
    assert upsert_scores(engine, _scores([1, 2, 3], 0.1), src) == 3
    assert upsert_scores(engine, _scores([2, 3, 4], 0.7, recs=False), src) == 3
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT customer_id, churn_probability, recommendations, "
                "recommender_model_version FROM scores ORDER BY customer_id"
            )
        ).all()
    engine.dispose()
    assert [(r[0], r[1]) for r in rows] == [(1, 0.1), (2, 0.7), (3, 0.7), (4, 0.7)]
    assert json.loads(rows[0][2])[0]["item"] == "addon:analytics" and rows[0][3] == "1"
    assert rows[1][2] is None and rows[1][3] is None  # replaced, not merged


def test_upsert_of_unknown_customer_names_the_partition(project: Settings) -> None:
    upgrade(project)
    engine = make_engine(project.db_url)
    load_raw(engine, project.raw_dir)
    with pytest.raises(DataError, match=r"part-00009\.parquet: rejected by the database"):
        upsert_scores(engine, _scores([99_999_999], 0.1), Path("part-00009.parquet"))
    engine.dispose()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-of", "2025-13-01"], "--as-of: expected a date YYYY-MM-DD"),
        (["--as-of", "2025-10-01", "--workers", "0"], "--workers: expected at least 1"),
    ],
)
def test_cli_bad_option_is_one_line_usage_error(args: list[str], message: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "paycycle", "score", *args], capture_output=True, text=True
    )
    assert proc.returncode == EXIT_USAGE
    assert message in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_cli_without_raw_data_names_the_folder(tmp_path: Path) -> None:
    shutil.copy(Path(__file__).resolve().parents[2] / "params.yaml", tmp_path / "params.yaml")
    proc = subprocess.run(
        [sys.executable, "-m", "paycycle", "score", "--as-of", "2025-10-01", "--single-process"],
        capture_output=True,
        text=True,
        env={**os.environ, "PAYCYCLE_ROOT": str(tmp_path)},
    )
    assert proc.returncode == EXIT_DATA
    assert "data/raw/customers: no Parquet parts found" in proc.stderr


TEMP_SERVER_FLOW = """
from prefect import flow, get_run_logger
from flows.score import prefect_api

@flow
def hello() -> str:
    get_run_logger().info("hello from the flow")
    return "done"

with prefect_api() as url:
    print(url, hello())
"""


@pytest.mark.timeout(300)
def test_without_prefect_api_url_a_temporary_server_runs_the_flow_and_stops(
    tmp_path: Path,
) -> None:
    """`paycycle score` from a plain shell: no PREFECT_API_URL ⇒ one temporary server that
    the flow and its Dask workers share, its logs flushed before it stops."""
    env = env_without_prefect(PREFECT_HOME=str(tmp_path / "prefect"), PYTHONPATH=str(PROJECT_ROOT))
    done = run_python(["-c", TEMP_SERVER_FLOW], cwd=tmp_path, env=env, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split()[-1] == "done" and "http://127.0.0.1" in done.stdout


def test_migration_0006_keeps_scores_and_adds_null_prediction_ids(project: Settings) -> None:
    """A store holding scores from before revision 0006 keeps every row; ids start null."""
    upgrade(project, revision="0005")
    engine = make_engine(project.db_url)
    load_raw(engine, project.raw_dir)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO scores (customer_id, as_of, churn_probability, churn_model_version)"
                " VALUES (1, '2025-10-01', 0.25, '3'), (2, '2025-10-01', 0.5, '3')"
            )
        )
    assert upgrade(project) == head_revision()
    assert upsert_scores(engine, _scores([3], 0.1), Path("part-00000.parquet")) == 1
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT customer_id, churn_probability, prediction_id FROM scores ORDER BY 1")
        ).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [(1, 0.25, None), (2, 0.5, None), (3, 0.1, f"{3:032x}")]
