"""Point-in-time correctness: nothing on or after `as_of` may change a feature."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.build import build_features, build_labels, load_events

AS_OF = pd.Timestamp("2025-08-01")
TIME_COLUMNS = {
    "usage": "month",
    "invoices": "due_date",
    "payments": "attempted_at",
    "offers": "offered_at",
    "adoptions": "adopted_at",
}


@pytest.fixture(scope="module")
def events(small_sim: Path) -> dict[str, pd.DataFrame]:
    return load_events(small_sim / "raw")


def scramble_future(events: dict[str, pd.DataFrame], seed: int) -> dict[str, pd.DataFrame]:
    """Shuffle every column of every event on or after AS_OF among future rows, and drop some."""
    rng = np.random.default_rng(seed)
    out = dict(events)
    for table, col in TIME_COLUMNS.items():
        df = events[table].copy()
        future = df[col] >= AS_OF
        if table == "usage":  # usage for month M is complete only after M ends
            future = df[col] + pd.offsets.MonthBegin(1) > AS_OF
        idx = np.flatnonzero(future)
        for c in df.columns:
            if c in ("customer_id", col):
                continue
            df.loc[df.index[idx], c] = df[c].to_numpy()[rng.permutation(idx)]
        keep = ~future | (rng.random(len(df)) < 0.5)
        out[table] = df[keep].reset_index(drop=True)
    return out


def test_future_events_do_not_change_features(events: dict[str, pd.DataFrame]) -> None:
    before = build_features(events, AS_OF)
    for seed in (1, 2):
        after = build_features(scramble_future(events, seed), AS_OF)
        pd.testing.assert_frame_equal(before, after)


def test_final_invoice_status_does_not_leak(events: dict[str, pd.DataFrame]) -> None:
    """The stored status is the *final* one; features rebuild status from attempts before as_of."""
    changed = dict(events)
    inv = events["invoices"].copy()
    inv["status"] = "paid"
    changed["invoices"] = inv
    pd.testing.assert_frame_equal(build_features(events, AS_OF), build_features(changed, AS_OF))


def test_labels_look_only_at_the_horizon(events: dict[str, pd.DataFrame]) -> None:
    y = build_labels(events, AS_OF)
    subs = events["subscriptions"].set_index("customer_id").loc[y.index]
    churned = subs.loc[y == 1, "cancelled_at"]
    assert ((churned >= AS_OF) & (churned < AS_OF + pd.Timedelta(days=30))).all()
    assert y.mean() > 0


def test_population_is_customers_at_risk(events: dict[str, pd.DataFrame]) -> None:
    f = build_features(events, AS_OF)
    subs = events["subscriptions"].set_index("customer_id").loc[f["customer_id"]]
    assert (subs["start_date"] < AS_OF).all()
    assert (subs["cancelled_at"].isna() | (subs["cancelled_at"] >= AS_OF)).all()
    assert f["customer_id"].is_unique
    assert not f.isna().any().any()
