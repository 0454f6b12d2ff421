"""Recommender data: point-in-time inputs, held-out adoption labels and the simulator's oracle.

The recommender ranks the catalog's *items* (5 add-ons, 4 plans). Internally it predicts over
seven *actions*: the five add-ons plus `upgrade` and `downgrade` (one tier, as plans move in the
business), which map back to items through the customer's current plan.

Inputs at ``as_of`` (`build_rec_features`): the `features.build` columns plus what the ranking
needs that the churn features do not carry — the add-ons owned (`owned_<addon>`, from every
add-on adoption before ``as_of``: signup, organic, trial), the plan in force (the latest plan
adoption before ``as_of`` wins over the last usage month's plan, which lags a change by a month),
usage relative to that plan (`usage_ratio`, and `hist_usage_ratio` over the last three complete
months) and six-month means of the add-on signals (`hist_feat_*`, less noisy than one month).

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

from features.build import build_features
from paycycle import catalog
from paycycle.errors import DataError

ADDONS = tuple(catalog.ADDON_NAMES)
PLAN_NAMES = tuple(p[1] for p in catalog.PLANS)
PLAN_IDS = tuple(p[0] for p in catalog.PLANS)
INCLUDED = np.array([p[4] for p in catalog.PLANS], dtype=float)
ITEMS = tuple(f"addon:{a}" for a in ADDONS) + tuple(f"plan:{p}" for p in PLAN_NAMES)
ACTIONS = (*ADDONS, "upgrade", "downgrade")
UP, DOWN = len(ADDONS), len(ADDONS) + 1
ORGANIC_KINDS = ("addon", "upgrade", "downgrade")
SIGNALS = tuple(a[3] for a in catalog.ADDONS)
OWNED_COLUMNS = tuple(f"owned_{a}" for a in ADDONS)
HIST_COLUMNS = tuple(f"hist_{s}" for s in SIGNALS)
EXTRA_NUMERIC = ("usage_ratio", "hist_usage_ratio", *HIST_COLUMNS, *OWNED_COLUMNS)
LABEL_COLUMNS = tuple(f"y_{a}" for a in ACTIONS)
WINDOW_DAYS = 60
HISTORY_MONTHS = 6
# the simulator's adoption rule (paycycle/sim/simulator.py docstring)
ADOPT_RATE, AFFINITY_SCALE = 0.04, 1.5
UP_RATE, UP_RATIO, DOWN_RATE, DOWN_RATIO = 0.3, 1.3, 0.15, 0.25


def _ts(as_of: dt.date | str | pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(as_of).normalize()


def owned_addons(adoptions: pd.DataFrame, as_of: dt.date | str) -> pd.DataFrame:
    """`owned_<addon>` (0/1) per customer from every add-on adoption strictly before `as_of`."""
    t = _ts(as_of)
    a = adoptions.loc[(adoptions["adopted_at"] < t) & adoptions["item"].str.startswith("addon:")]
    names = a["item"].str.removeprefix("addon:")
    flags = pd.crosstab(a["customer_id"], names).clip(upper=1)
    flags = flags.reindex(columns=list(ADDONS), fill_value=0)
    flags.columns = list(OWNED_COLUMNS)
    return flags.astype(float)


def plan_in_force(
    adoptions: pd.DataFrame, as_of: dt.date | str, usage_tier: pd.Series
) -> pd.Series:
    """Plan tier (1-4) on `as_of`: the latest plan adoption before it, else `usage_tier`."""
    t = _ts(as_of)
    a = adoptions.loc[(adoptions["adopted_at"] < t) & adoptions["item"].str.startswith("plan:")]
    last = a.sort_values("adopted_at", kind="stable").groupby("customer_id")["item"].last()
    tier = last.str.removeprefix("plan:").map({n: i + 1 for i, n in enumerate(PLAN_NAMES)})
    out = usage_tier.copy()
    hit = out.index.intersection(tier.index)
    out.loc[hit] = tier.loc[hit].astype(float)
    return out


def usage_history(usage: pd.DataFrame, as_of: dt.date | str) -> pd.DataFrame:
    """Per customer: mean add-on signals over the last six complete months, geometric-mean units
    over the last three (months before `as_of` only)."""
    t = _ts(as_of)
    done = usage.loc[usage["month"] + pd.offsets.MonthBegin(1) <= t]
    recent = done.loc[done["month"] >= t - pd.DateOffset(months=HISTORY_MONTHS)]
    out = recent.groupby("customer_id")[list(SIGNALS)].mean()
    out.columns = list(HIST_COLUMNS)
    last3 = done.loc[done["month"] >= t - pd.DateOffset(months=3)]
    log_units = np.log(last3["units"].clip(lower=1).astype(float))
    out["hist_units"] = np.exp(log_units.groupby(last3["customer_id"]).mean())
    return out


def build_rec_features(events: Mapping[str, pd.DataFrame], as_of: dt.date | str) -> pd.DataFrame:
    """Recommender inputs for every customer at risk on `as_of` (see the module docstring).

    Returns:
        `features.build` columns plus `plan_id`, `plan_tier` (in force), `usage_ratio`,
        `hist_usage_ratio`, `hist_feat_*` and `owned_*`.
    """
    t = _ts(as_of)
    df = build_features(events, t).set_index("customer_id")
    units = df["usage_pattern"] / 100 * INCLUDED[(df["plan_tier"].astype(int) - 1).to_numpy()]
    tier = plan_in_force(events["adoptions"], t, df["plan_tier"])
    df["plan_tier"] = tier
    df["plan_id"] = np.asarray(PLAN_IDS)[tier.astype(int).to_numpy() - 1]
    inc = INCLUDED[tier.astype(int).to_numpy() - 1]
    df["usage_ratio"] = units / inc
    hist = usage_history(events["usage"], t).reindex(df.index)
    df["hist_usage_ratio"] = (hist["hist_units"] / inc).fillna(df["usage_ratio"])
    for col, sig in zip(HIST_COLUMNS, SIGNALS, strict=True):
        df[col] = hist[col].fillna(df[sig])
    owned = owned_addons(events["adoptions"], t).reindex(df.index, fill_value=0.0)
    df[list(OWNED_COLUMNS)] = owned.to_numpy()
    return df.reset_index()


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
    t = _ts(as_of)
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
