"""Recommender inputs at ``as_of``: the catalog's items and actions, and point-in-time features.

The recommender ranks the catalog's *items* (5 add-ons, 4 plans). Internally it predicts over
seven *actions*: the five add-ons plus `upgrade` and `downgrade` (one tier, as plans move in the
business), which map back to items through the customer's current plan.

Inputs at ``as_of`` (`build_rec_features`): the `features.build` columns plus what the ranking
needs that the churn features do not carry — the add-ons owned (`owned_<addon>`, from every
add-on adoption before ``as_of``: signup, organic, trial), the plan in force (the latest plan
adoption before ``as_of`` wins over the last usage month's plan, which lags a change by a month),
usage relative to that plan (`usage_ratio`, and `hist_usage_ratio` over the last three complete
months) and six-month means of the add-on signals (`hist_feat_*`, less noisy than one month).
Training labels and the oracle are in `training/recommender/data.py`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.build import build_features
from paycycle import catalog

ADDONS = tuple(catalog.ADDON_NAMES)
PLAN_NAMES = tuple(p[1] for p in catalog.PLANS)
PLAN_IDS = tuple(p[0] for p in catalog.PLANS)
INCLUDED = np.array([p[4] for p in catalog.PLANS], dtype=float)
ITEMS = tuple(f"addon:{a}" for a in ADDONS) + tuple(f"plan:{p}" for p in PLAN_NAMES)
ACTIONS = (*ADDONS, "upgrade", "downgrade")
UP, DOWN = len(ADDONS), len(ADDONS) + 1
SIGNALS = tuple(a[3] for a in catalog.ADDONS)
OWNED_COLUMNS = tuple(f"owned_{a}" for a in ADDONS)
HIST_COLUMNS = tuple(f"hist_{s}" for s in SIGNALS)
EXTRA_NUMERIC = ("usage_ratio", "hist_usage_ratio", *HIST_COLUMNS, *OWNED_COLUMNS)
HISTORY_MONTHS = 6


def as_timestamp(as_of: dt.date | str | pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(as_of).normalize()


def owned_addons(adoptions: pd.DataFrame, as_of: dt.date | str) -> pd.DataFrame:
    """`owned_<addon>` (0/1) per customer from every add-on adoption strictly before `as_of`."""
    t = as_timestamp(as_of)
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
    t = as_timestamp(as_of)
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
    t = as_timestamp(as_of)
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
    t = as_timestamp(as_of)
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
