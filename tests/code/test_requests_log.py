"""Request log: one file per flush, readable by time, never a half-written file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from monitoring.requests import TIME_COLUMN, RequestLogger, append_requests, read_requests


def test_append_and_read_back(tmp_path: Path) -> None:
    first = pd.DataFrame({"customer_id": [1, 2], "churn_probability": [0.1, 0.7]})
    path = append_requests(first, tmp_path)
    assert path is not None and path.suffix == ".parquet"
    assert append_requests(first.iloc[:0], tmp_path) is None
    out = read_requests(tmp_path)
    assert list(out["customer_id"]) == [1, 2] and TIME_COLUMN in out
    later = read_requests(tmp_path, since=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5))
    assert later.empty
    assert not list(tmp_path.rglob("*.tmp"))


def test_logger_buffers_and_flushes_once_per_batch(tmp_path: Path) -> None:
    logger = RequestLogger(tmp_path, flush_rows=3)
    assert logger.log(pd.DataFrame({"customer_id": [1]})) is None
    assert logger.log(pd.DataFrame({"customer_id": [2, 3]})) is not None  # reached 3 rows
    logger.log(pd.DataFrame({"customer_id": [4]}))
    logger.flush()
    assert len(list(tmp_path.rglob("requests-*.parquet"))) == 2
    assert sorted(read_requests(tmp_path)["customer_id"]) == [1, 2, 3, 4]


def test_read_empty_dir(tmp_path: Path) -> None:
    assert read_requests(tmp_path / "nothing").empty


def test_scored_requests_are_logged_as_the_monitor_reads_them(tmp_path: Path) -> None:
    """The service's path: validated customers + probabilities, written by a background thread
    once `flush_rows` is reached, read back with every feature column the drift window needs."""
    import numpy as np

    from features.schema import COLUMNS
    from serving.schemas import Customer

    logger = RequestLogger(tmp_path, flush_rows=4)
    batch = [
        Customer(customer_id=f"c{i}", subscription_duration=i, failed_payments=0, usage_pattern=50)
        for i in range(3)
    ]
    logger.log_scored(batch, np.array([0.1, 0.2, 0.3]), "7")
    assert read_requests(tmp_path).empty  # below flush_rows: nothing written yet
    logger.log_scored(batch[:1], np.array([0.4]), "7")  # reaches 4 rows: written in background
    logger.close()
    out = read_requests(tmp_path)
    assert len(out) == 4 and set(COLUMNS) <= set(out.columns)
    assert out["churn_probability"].tolist() == [0.1, 0.2, 0.3, 0.4]
    assert set(out["model_version"]) == {"7"} and out["customer_id"].tolist()[:2] == ["c0", "c1"]
    assert out["subscription_duration"].tolist()[:3] == [0.0, 1.0, 2.0]


def test_batcher_observer_logs_the_scored_columns_like_the_plain_path(tmp_path: Path) -> None:
    """The service logs from the churn batcher (the columns it already built for the model);
    the file must hold what converting the customers again would give."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    from inference.prediction_ids import new_ids
    from serving.batching import MicroBatcher
    from serving.schemas import Customer

    batch = [
        Customer(
            customer_id=f"c{i}", subscription_duration=i, failed_payments=i % 2, usage_pattern=40
        )
        for i in range(5)
    ]
    observed, plain = RequestLogger(tmp_path / "observed"), RequestLogger(tmp_path / "plain")
    with ThreadPoolExecutor(1) as pool:
        batcher = MicroBatcher(lambda cols: cols["subscription_duration"] / 10, pool)
        batcher.observer = lambda items, cols, out, ids: observed.log_scored(
            items, out, "9", cols, ids
        )

        async def score() -> list[np.ndarray]:
            return await asyncio.gather(
                batcher.submit(batch[:2], ids[:2]), batcher.submit(batch[2:], ids[2:])
            )

        ids = new_ids(len(batch))
        probs = np.concatenate(asyncio.run(score()))
    plain.log_scored(batch, probs, "9", prediction_ids=ids)
    observed.close()
    plain.close()
    got, want = read_requests(tmp_path / "observed"), read_requests(tmp_path / "plain")
    assert got["churn_probability"].tolist() == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert got["prediction_id"].tolist() == ids and len(set(ids)) == 5
    cols = [c for c in want.columns if c != TIME_COLUMN]
    pd.testing.assert_frame_equal(got[cols], want[cols])


def test_bound_below_the_flush_size_is_a_config_error(tmp_path: Path) -> None:
    import pytest
    import yaml

    from paycycle import config
    from paycycle.errors import ConfigError

    (tmp_path / "params.yaml").write_text(
        yaml.safe_dump({"drift": {"log_flush_rows": 500, "request_log_max_rows": 100}})
    )
    with pytest.raises(ConfigError) as err:
        config.load(root=tmp_path)
    assert "drift.request_log_max_rows" in str(err.value)
    assert "must be >= drift.log_flush_rows (500)" in str(err.value)
    assert "\n" not in str(err.value)


def _customers(start: int, n: int) -> list:
    from serving.schemas import Customer

    return [
        Customer(
            customer_id=f"c{i}",
            subscription_duration=i,
            failed_payments=i % 3,
            usage_pattern=10 + i,
            cycle=("monthly", "annual")[i % 2],
        )
        for i in range(start, start + n)
    ]


def test_matrix_batches_chunks_and_plain_columns_write_the_same_rows(tmp_path: Path) -> None:
    """The service's batches carry their two matrices (`FeatureColumns`) and a flush builds its
    table a few batches at a time (`_scored_table`, so the writer never holds the GIL long):
    the file holds exactly what per-column batches give, whatever the chunk size, and a batch
    cut by the buffer bound keeps its matrices' rows."""
    import numpy as np

    from features.columns import FeatureColumns, customers_to_columns
    from monitoring import requests

    batches = [_customers(10 * b, b + 1) for b in range(7)]
    matrix, plain = RequestLogger(tmp_path / "matrix"), RequestLogger(tmp_path / "plain")
    for b, customers in enumerate(batches):
        cols = customers_to_columns(customers)
        assert isinstance(cols, FeatureColumns)
        probs = np.linspace(0, 1, len(customers))
        ids = [f"p{b}-{i}" for i in range(len(customers))]
        matrix.log_scored(customers, probs, "4", cols, ids)
        plain.log_scored(customers, probs, "4", dict(cols), ids)  # every column on its own
    scored = list(matrix._batches)
    one, two = requests._scored_table(scored, chunk=100), requests._scored_table(scored, chunk=2)
    assert one.drop(["logged_at"]).equals(two.drop(["logged_at"]))
    matrix.close()
    plain.close()
    got, want = read_requests(tmp_path / "matrix"), read_requests(tmp_path / "plain")
    assert len(got) == sum(map(len, batches)) == 28
    assert str(got[TIME_COLUMN].dtype) == "datetime64[ns, UTC]"
    pd.testing.assert_frame_equal(got.drop(columns=TIME_COLUMN), want.drop(columns=TIME_COLUMN))
    assert got["cycle"].tolist()[:3] == ["monthly", "monthly", "annual"]

    bounded = RequestLogger(tmp_path / "bounded", flush_rows=4, max_buffer_rows=4)
    bounded._writer = lambda: type("Never", (), {"submit": lambda *a: None})()  # keep it buffered
    bounded.log_scored(batches[6], np.zeros(7), "4", customers_to_columns(batches[6]))
    (kept,) = bounded._batches
    assert isinstance(kept[4], FeatureColumns) and kept[4].numeric.shape[0] == 4
    bounded.flush()
    assert read_requests(tmp_path / "bounded")["customer_id"].tolist() == [
        "c63",
        "c64",
        "c65",
        "c66",
    ]
