"""Recommender training data: held-out adoption labels, the training table and the oracle.

Inputs at ``as_of`` and the item/action vocabulary are `features.recommender`.

Labels (`build_rec_labels`): the *organic* adoptions (kinds `addon`, `upgrade`, `downgrade`) in
``[as_of, as_of + window_days)``. Trials and offer-driven plan changes come from the randomised
offer policy, not from preference, so they are neither labels nor recommendations to learn.

Oracle (`oracle_probabilities`): the simulator's rule with the truth — an add-on ``j`` not owned
is adopted in a month with ``0.04 · softmax(1.5·affinity)_j`` over the add-ons not owned; an
upgrade with ``0.3 · P(usage > 1.3 · included)``, a downgrade with ``0.15 · P(usage <
0.25 · included)``, where usage ``= need · exp(0.25 z + 0.15 e)``, ``z ~ N(0, 1)``; each over
the window's months.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from features.recommender import (  # noqa: F401 - the item/action vocabulary, used as rd.*
    ACTIONS,
    ADDONS,
    DOWN,
    EXTRA_NUMERIC,
    HIST_COLUMNS,
    HISTORY_MONTHS,
    INCLUDED,
    ITEMS,
    OWNED_COLUMNS,
    PLAN_IDS,
    PLAN_NAMES,
    SIGNALS,
    UP,
    as_timestamp,
    build_rec_features,
)
from paycycle.errors import DataError

ORGANIC_KINDS = ("addon", "upgrade", "downgrade")
LABEL_COLUMNS = tuple(f"y_{a}" for a in ACTIONS)
WINDOW_DAYS = 60
# the simulator's adoption rule (paycycle/sim/simulator.py docstring)
ADOPT_RATE, AFFINITY_SCALE = 0.04, 1.5
UP_RATE, UP_RATIO, DOWN_RATE, DOWN_RATIO = 0.3, 1.3, 0.15, 0.25


def build_rec_labels(
    events: Mapping[str, pd.DataFrame],
    as_of: dt.date | str,
    tier: pd.Series,
    window_days: int = WINDOW_DAYS,
) -> pd.DataFrame:
    """Multi-hot `y_<action>` of organic adoptions in `[as_of, as_of + window_days)`.

    A plan adoption is an `upgrade` when its tier is above the plan in force on `as_of` (`tier`,
    indexed by customer), a `downgrade` when below; moving back to that plan inside the window
    (down then up again) is no adoption.
    """
    t = as_timestamp(as_of)
    a = events["adoptions"]
    a = a.loc[
        (a["adopted_at"] >= t)
        & (a["adopted_at"] < t + pd.Timedelta(days=window_days))
        & a["kind"].isin(ORGANIC_KINDS)
        & a["customer_id"].isin(tier.index)
    ]
    plan_tier = (
        a["item"].str.removeprefix("plan:").map({n: i + 1 for i, n in enumerate(PLAN_NAMES)})
    )
    now = tier.reindex(a["customer_id"]).to_numpy()
    action = np.where(
        a["kind"] == "addon",
        a["item"].str.removeprefix("addon:"),
        np.where(plan_tier > now, "upgrade", np.where(plan_tier < now, "downgrade", "")),
    )
    keep = action != ""
    y = pd.crosstab(a["customer_id"][keep], action[keep]).clip(upper=1)
    y = y.reindex(columns=list(ACTIONS), fill_value=0)
    y.columns = list(LABEL_COLUMNS)
    return y.astype(float)


def build_rec_table(
    events: Mapping[str, pd.DataFrame],
    as_of_dates: Iterable[dt.date | str],
    window_days: int = WINDOW_DAYS,
) -> pd.DataFrame:
    """Stacked snapshots: inputs at each `as_of` and the window's labels (0 rows = no adoption)."""
    frames = []
    for as_of in as_of_dates:
        feats = build_rec_features(events, as_of)
        tier = feats.set_index("customer_id")["plan_tier"]
        y = build_rec_labels(events, as_of, tier, window_days).reindex(tier.index).fillna(0)
        frames.append(pd.concat([feats, y.reset_index(drop=True)], axis=1))
    if not frames:
        raise DataError("as_of_dates: need at least one snapshot date")
    return pd.concat(frames, ignore_index=True)


def rec_snapshot_dates(
    start: dt.date, months: int, window_days: int = WINDOW_DAYS, first: int = 2
) -> list[str]:
    """Month starts from month `first` whose label window ends inside the simulated period."""
    end = pd.Timestamp(start) + pd.DateOffset(months=months)
    dates = [pd.Timestamp(start) + pd.DateOffset(months=m) for m in range(first, months)]
    return [d.date().isoformat() for d in dates if d + pd.Timedelta(days=window_days) <= end]


def split_rec(
    table: pd.DataFrame, window_days: int = WINDOW_DAYS
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The last snapshot is the holdout; training snapshots are those whose label window closes
    by the holdout date (no label overlaps the holdout period)."""
    last = table["as_of"].max()
    train = table.loc[table["as_of"] + pd.Timedelta(days=window_days) <= last]
    if train.empty:
        raise DataError("as_of: no training snapshot ends its label window before the holdout")
    return train.reset_index(drop=True), table.loc[table["as_of"] == last].reset_index(drop=True)


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    from scipy.special import ndtr

    return ndtr(np.asarray(x, float))


def oracle_probabilities(
    frame: pd.DataFrame, truth_dir: Path, window_days: int = WINDOW_DAYS
) -> np.ndarray:
    """P(action adopted in the window) from the simulator's truth, `(n, 7)`; 0 where impossible.

    Only evaluation calls this; truth never feeds a model.
    """
    from paycycle.tables import read_table

    truth = read_table(truth_dir, "customers").set_index("customer_id")
    truth = truth.reindex(frame["customer_id"])
    if truth["usage_need"].isna().any():
        raise DataError(f"{truth_dir}: customers missing from the truth table")
    months = window_days / 30.44
    aff = truth[[f"pref_{a}" for a in ADDONS]].to_numpy(float)
    owned = frame[list(OWNED_COLUMNS)].to_numpy(float) > 0.5
    logits = np.where(owned, -np.inf, AFFINITY_SCALE * aff)
    with np.errstate(invalid="ignore"):
        soft = np.exp(logits - logits.max(axis=1, keepdims=True))
        soft = np.nan_to_num(soft / soft.sum(axis=1, keepdims=True))
    p = np.zeros((len(frame), len(ACTIONS)))
    p[:, :UP] = 1 - (1 - ADOPT_RATE * soft) ** months
    tier = frame["plan_tier"].to_numpy(int)
    inc = INCLUDED[tier - 1]
    centre = np.log(truth["usage_need"].to_numpy(float) / inc) + 0.15 * truth[
        "engagement"
    ].to_numpy(float)
    q_up = 1 - _norm_cdf((np.log(UP_RATIO) - centre) / 0.25)
    q_down = _norm_cdf((np.log(DOWN_RATIO) - centre) / 0.25)
    p[:, UP] = np.where(tier < 4, 1 - (1 - UP_RATE * q_up) ** months, 0)
    p[:, DOWN] = np.where(tier > 1, 1 - (1 - DOWN_RATE * q_down) ** months, 0)
    return p
