"""Validated request profiles → the recommender's and offer policy's inputs.

Both run once per micro-batch on the scoring thread. The churn columns come from the same
`customers_to_columns` as `/churn` (a profile exposes `plan_tier`, `addons_count` and `plan_fit`
like features), so the offer policy and the churn model see identical numbers.

`recommender_frame` completes those columns the way `inference.recommender.prepare_inputs` does
(usage ratios from `usage_pattern`, history defaulting to last month, owned add-on flags, log
ratios) but with NumPy on already-validated values: `prepare_inputs` re-validates through pandas
at ~10 ms per call. `tests/code/test_serving_profiles.py` checks the two agree column by column.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from features.columns import customers_to_columns
from paycycle import catalog

ADDON_INDEX = {name: i for i, name in enumerate(catalog.ADDON_NAMES)}
OWNED_COLUMNS = [f"owned_{name}" for name in catalog.ADDON_NAMES]
SIGNALS = [a[3] for a in catalog.ADDONS]
HISTORY_COLUMNS = [f"hist_{s}" for s in SIGNALS]
MIN_RATIO = 1e-3  # `prepare_inputs` clips usage ratios here before the log


def _optional(profiles: Sequence[Any], name: str) -> np.ndarray:
    values = [getattr(p, name) for p in profiles]
    return np.array([np.nan if v is None else v for v in values], dtype=np.float64)


def _owned(profiles: Sequence[Any]) -> np.ndarray:
    owned = np.zeros((len(profiles), len(ADDON_INDEX)))
    for i, p in enumerate(profiles):
        for name in p.addons:
            owned[i, ADDON_INDEX[name]] = 1.0
    return owned


def recommender_frame(profiles: Sequence[Any]) -> pd.DataFrame:
    """Validated profiles → every column `Recommender.scores(..., prepared=True)` reads."""
    cols: dict[str, Any] = customers_to_columns(profiles)
    cols["plan_id"] = np.array([p.plan_id for p in profiles], dtype=np.int64)
    ratio = cols["usage_pattern"] / 100
    cols["usage_ratio"] = ratio
    hist = _optional(profiles, "hist_usage_ratio")
    cols["hist_usage_ratio"] = np.where(np.isnan(hist), ratio, hist)
    for column, signal in zip(HISTORY_COLUMNS, SIGNALS, strict=True):
        given = _optional(profiles, column)
        cols[column] = np.where(np.isnan(given), cols[signal], given)
    owned = _owned(profiles)
    for j, column in enumerate(OWNED_COLUMNS):
        cols[column] = owned[:, j]
    cols["log_usage_ratio"] = np.log(np.clip(ratio, MIN_RATIO, None))
    cols["log_hist_usage_ratio"] = np.log(np.clip(cols["hist_usage_ratio"], MIN_RATIO, None))
    return pd.DataFrame(cols)


def recommend_scores(recommender: Any):
    """`frame -> (n, 9)` item scores from the recommender's compiled signature."""

    def score(frame: pd.DataFrame) -> np.ndarray:
        return recommender.scores(frame, prepared=True)

    return score


def priced_to_inputs(items: Sequence[tuple[Any, float]]) -> tuple[pd.DataFrame, np.ndarray]:
    """`(profile, P(churn))` pairs → the policy's feature frame and the churn probabilities."""
    frame = pd.DataFrame(customers_to_columns([profile for profile, _ in items]))
    return frame, np.array([p for _, p in items], dtype=np.float64)


def decide_rows(policy: Any):
    """`(frame, p_churn) -> (n, 4)` object rows: offer type or None, EV, P(accept), reason."""

    def decide(inputs: tuple[pd.DataFrame, np.ndarray]) -> np.ndarray:
        frame, p_churn = inputs
        d = policy.decide(frame, p_churn, None)
        return d[["offer_type", "expected_value", "p_accept", "reason"]].to_numpy(object)

    return decide
