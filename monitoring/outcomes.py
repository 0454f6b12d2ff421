"""Prediction windows joined to their realized outcomes (the input of `monitoring.performance`).

A window is every churn prediction made for the month starting at `as_of`, one row per
(customer, model version) with `customer_id`, `churn_probability`, `model_version`,
`prediction_id` and `churned`: 1 when the customer cancelled within `HORIZON_DAYS` of `as_of`
(the training label, `features.build.build_labels`), 0 when not, NaN while the horizon is still
open. Sources:

* `store_window`: batch scores (`scores` table, `as_of`) plus served predictions logged during
  the month (`monitoring.requests.read_requests`) for customers the store knows, joined to
  `subscriptions.cancelled_at`. A customer both batch-scored and served keeps the batch row (the
  scheduled prediction); served-only customers are added.
* `simulated_windows`: a fresh simulation scored by a given scorer at the month before the shift
  and at the shift month, with the simulator's cancellations as outcomes (the monitor's
  `--scenario` mode, the benchmark and the tests).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.build import HORIZON_DAYS
from monitoring.performance import LABEL, PREDICTION, VERSION

COLUMNS = ["customer_id", PREDICTION, VERSION, "prediction_id", LABEL]
Scorer = Callable[[pd.DataFrame], np.ndarray]


def label_window(
    predictions: pd.DataFrame, cancelled_at: pd.Series, as_of: pd.Timestamp, known_until: Any
) -> pd.DataFrame:
    """Add `churned` from cancellation dates (indexed by customer id); NaN while the horizon
    (`as_of` + `HORIZON_DAYS`) is after `known_until`, the newest date outcomes are known for."""
    end = pd.Timestamp(as_of) + pd.Timedelta(days=HORIZON_DAYS)
    out = predictions.copy()
    if pd.Timestamp(known_until) < end:
        out[LABEL] = np.nan
        return out[COLUMNS]
    cancelled = pd.to_datetime(cancelled_at.reindex(out["customer_id"].to_numpy()).to_numpy())
    churned = (cancelled >= pd.Timestamp(as_of)) & (cancelled < end)
    out[LABEL] = np.asarray(churned, dtype=float)
    return out[COLUMNS]


def store_window(
    engine: Any, as_of: dt.date, requests_dir: Path | None = None, known_until: Any = None
) -> pd.DataFrame:
    """The window of `as_of` from the store (and the request log), labelled where known.

    Args:
        engine: the store's engine.
        as_of: first day of the month the predictions were made for.
        requests_dir: the request log folder (`drift.requests_dir`); None skips served rows.
        known_until: outcomes are complete up to this date (default: today, UTC).
    """
    from sqlalchemy import select

    from monitoring.requests import ID_COLUMN, TIME_COLUMN, read_requests
    from paycycle.store import Score, Subscription

    start = pd.Timestamp(as_of)
    with engine.connect() as conn:
        batch = pd.DataFrame(
            conn.execute(
                select(
                    Score.customer_id,
                    Score.churn_probability,
                    Score.churn_model_version.label(VERSION),
                    Score.prediction_id,
                ).where(Score.as_of == as_of)
            ).all(),
            columns=COLUMNS[:4],
        )
        subs = pd.DataFrame(
            conn.execute(select(Subscription.customer_id, Subscription.cancelled_at)).all(),
            columns=["customer_id", "cancelled_at"],
        )
    cancelled = subs.groupby("customer_id")["cancelled_at"].min()
    frames = [batch]
    if requests_dir is not None:
        served = read_requests(requests_dir, since=start)
        if len(served) and "customer_id" in served:
            end = (start + pd.offsets.MonthBegin(1)).tz_localize("UTC")
            served = served.loc[served[TIME_COLUMN] < end]
            ids = pd.to_numeric(served["customer_id"], errors="coerce")
            keep = ids.isin(cancelled.index) & ~ids.isin(batch["customer_id"])
            served = served.loc[keep].assign(customer_id=ids[keep].astype("int64"))
            served = served.rename(columns={ID_COLUMN: "prediction_id"})
            frames.append(served.drop_duplicates("customer_id", keep="last")[COLUMNS[:4]])
    window = pd.concat([f for f in frames if len(f)] or [batch], ignore_index=True)
    known = pd.Timestamp.now(tz="UTC").tz_localize(None) if known_until is None else known_until
    return label_window(window, cancelled, start, known)


def scored(frame: pd.DataFrame, labels: pd.Series, scorer: Scorer, version: str) -> pd.DataFrame:
    """A labelled feature frame scored by `scorer`, as a window (ids are row numbers)."""
    return pd.DataFrame(
        {
            "customer_id": frame["customer_id"].to_numpy(np.int64),
            PREDICTION: np.asarray(scorer(frame), float),
            VERSION: version,
            "prediction_id": None,
            LABEL: labels.reindex(frame["customer_id"]).to_numpy(float),
        }
    )


def simulated_window(
    events: dict[str, pd.DataFrame], as_of: Any, scorer: Scorer, version: str
) -> pd.DataFrame:
    """The window of `as_of` in simulated events, labelled with the simulator's cancellations."""
    from features.build import build_features, build_labels

    frame = build_features(events, as_of)
    return scored(frame, build_labels(events, as_of), scorer, version)


def simulated_windows(
    spec: Any, scorer: Scorer, version: str
) -> tuple[pd.DataFrame, pd.DataFrame, pd.Timestamp]:
    """(prior window, window, its as_of) of a simulation: predictions at the first day of the
    month before the shift and of the shift month, each labelled with that month's outcomes."""
    from monitoring.windows import simulate_events
    from paycycle.calendar import month_starts

    events = simulate_events(spec)
    starts = month_starts(spec.start_date, spec.months)
    prior, current = (
        simulated_window(events, d, scorer, version)
        for d in starts[spec.shift - 1 : spec.shift + 1]
    )
    return prior, current, pd.Timestamp(starts[spec.shift])
