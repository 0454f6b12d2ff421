"""Point-in-time feature building, shared by training, batch scoring and serving.

`build_features(events, as_of)` looks only at events strictly before `as_of`: usage of complete
months (a usage row for month M counts once M's last day is before `as_of`), payment attempts and
invoices due before `as_of`, offers made before `as_of`, add-ons adopted before `as_of`. Invoice
status is rebuilt from payment attempts made before `as_of` (the stored status is the final one
and would leak). The plan in force is read from the last complete month's `included_units`.
Subscription end state (`status`, `cancelled_at`, `plan_id`) is used only to pick the customers
at risk on `as_of` and to build the label in `build_labels`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from features import schema
from paycycle import catalog
from paycycle.tables import read_table

EVENT_TABLES = catalog.EVENT_TABLES
HORIZON_DAYS = 30


def load_events(raw_dir: Path, tables: Iterable[str] = EVENT_TABLES) -> dict[str, pd.DataFrame]:
    """Read the raw tables `build_features` needs from a simulator/raw folder."""
    return {name: read_table(raw_dir, name) for name in tables}


def _ts(as_of: dt.date | str | pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(as_of).normalize()


def active_customers(events: Mapping[str, pd.DataFrame], as_of: dt.date | str) -> pd.DataFrame:
    """Customers signed up before `as_of` and not cancelled before it (the population at risk)."""
    t = _ts(as_of)
    subs = events["subscriptions"]
    at_risk = (subs["start_date"] < t) & (subs["cancelled_at"].isna() | (subs["cancelled_at"] >= t))
    return subs.loc[at_risk, ["customer_id", "start_date", "cycle", "cancelled_at"]]


def _last_month_usage(usage: pd.DataFrame, t: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    month_end = usage["month"] + pd.offsets.MonthBegin(1)
    done = usage.loc[month_end <= t]
    last_month = done["month"].max() if len(done) else t
    last = done.loc[done["month"] == last_month].set_index("customer_id")
    window = done.loc[
        (done["month"] < last_month) & (done["month"] >= last_month - pd.DateOffset(months=3))
    ]
    prior = window.groupby("customer_id")["units"].mean()
    days = (last_month + pd.offsets.MonthBegin(1) - last_month).days
    return last.assign(_days=days), prior.rename("prior_units").to_frame()


def _payment_state(events: Mapping[str, pd.DataFrame], t: pd.Timestamp) -> pd.DataFrame:
    pay = events["payments"]
    pay = pay.loc[pay["attempted_at"] < t]
    failed = pay.loc[pay["status"] == "failed"]
    recent = failed.loc[failed["attempted_at"] >= t - pd.Timedelta(days=90)]
    out = pd.DataFrame(
        {
            "failed_payments": recent.groupby("customer_id").size(),
            "last_failure": failed.groupby("customer_id")["attempted_at"].max(),
        }
    )
    inv = events["invoices"]
    inv = inv.loc[
        inv["due_date"] < t, ["invoice_id", "customer_id", "due_date", "amount", "currency"]
    ]
    inv = inv.sort_values(["customer_id", "due_date"])
    latest = inv.groupby("customer_id").tail(1).set_index("customer_id")
    paid_ids = pay.loc[pay["status"] == "paid", "invoice_id"]
    latest["unpaid_invoice"] = (~latest["invoice_id"].isin(paid_ids)).astype(float)
    old = inv.loc[inv["due_date"] < t - pd.DateOffset(months=3)].groupby("customer_id").tail(1)
    latest["old_amount"] = old.set_index("customer_id")["amount"]
    return out.join(latest[["amount", "currency", "unpaid_invoice", "old_amount"]], how="outer")


def build_features(events: Mapping[str, pd.DataFrame], as_of: dt.date | str) -> pd.DataFrame:
    """Features for every customer at risk on `as_of`, from events strictly before it.

    Args:
        events: raw tables (see `EVENT_TABLES`), as written by the simulator or read from the store.
        as_of: the scoring date; nothing on or after it is used.

    Returns:
        One row per customer: `customer_id`, `as_of` and `schema.COLUMNS`, validated by
        `schema.to_frame` (the same check the serving path runs).
    """
    t = _ts(as_of)
    base = active_customers(events, t).set_index("customer_id")
    cust = events["customers"].set_index("customer_id")
    df = pd.DataFrame(index=base.index)
    df["subscription_duration"] = (t - base["start_date"]).dt.days / 30.44
    df["cycle"] = base["cycle"]
    for col in ("segment", "country", "acquisition_channel"):
        df[col] = cust[col].reindex(df.index)

    last, prior = _last_month_usage(events["usage"], t)
    last = last.reindex(df.index)
    ratio = last["units"] / last["included_units"]
    df["usage_pattern"] = 100 * ratio
    df["plan_fit"] = np.log(np.clip(ratio, 1e-3, None))
    df["active_share"] = (last["active_days"] / last["_days"]).clip(0, 1)
    trend = last["units"] / prior["prior_units"].reindex(df.index)
    df["usage_trend"] = trend.replace([np.inf, -np.inf], np.nan).clip(0, 100)
    included = np.array([p[4] for p in catalog.PLANS])
    df["plan_tier"] = np.searchsorted(included, last["included_units"].fillna(5_000)) + 1.0
    for col in ("support_tickets", "feat_storage_gb", "feat_reports", "feat_api_calls", "feat_sms"):
        df[col] = last[col]

    pay = _payment_state(events, t).reindex(df.index)
    df["failed_payments"] = pay["failed_payments"].fillna(0)
    df["days_since_last_failure"] = ((t - pay["last_failure"]).dt.days).clip(upper=365).fillna(365)
    df["unpaid_invoice"] = pay["unpaid_invoice"].fillna(0)
    fx = pay["currency"].map(catalog.FX)
    per_month = np.where(df["cycle"] == "annual", 12.0, 1.0)
    df["monthly_charge_usd"] = pay["amount"] / fx / per_month
    df["price_change"] = (
        (pay["amount"] / pay["old_amount"] - 1).where(df["cycle"] == "monthly").fillna(0)
    )

    adopt = events["adoptions"]
    adopt = adopt.loc[(adopt["adopted_at"] < t) & adopt["item"].str.startswith("addon:")]
    df["addons_count"] = (
        adopt.drop_duplicates(["customer_id", "item"]).groupby("customer_id").size()
    )
    offers = events["offers"]
    recent = offers.loc[
        (offers["offered_at"] < t) & (offers["offered_at"] >= t - pd.Timedelta(days=90))
    ]
    df["offers_90d"] = recent.groupby("customer_id").size()
    df["addons_count"] = df["addons_count"].fillna(0)
    df["offers_90d"] = df["offers_90d"].fillna(0)

    df = df.reset_index()
    df.insert(1, "as_of", t)
    return schema.to_frame(df, strict=False).reset_index(drop=True)


def build_labels(
    events: Mapping[str, pd.DataFrame], as_of: dt.date | str, horizon_days: int = HORIZON_DAYS
) -> pd.Series:
    """1 if the customer cancels within `horizon_days` from `as_of`, indexed by `customer_id`."""
    t = _ts(as_of)
    base = active_customers(events, t).set_index("customer_id")
    end = t + pd.Timedelta(days=horizon_days)
    churned = base["cancelled_at"].notna() & (base["cancelled_at"] < end)
    return churned.astype(int).rename("churned")


def build_training_set(
    events: Mapping[str, pd.DataFrame], as_of_dates: Iterable[dt.date | str]
) -> pd.DataFrame:
    """Stacked point-in-time snapshots with the `churned` label, one row per (customer, as_of)."""
    frames = []
    for as_of in as_of_dates:
        feats = build_features(events, as_of)
        labels = build_labels(events, as_of)
        frames.append(feats.assign(churned=labels.reindex(feats["customer_id"]).to_numpy()))
    return pd.concat(frames, ignore_index=True)


def attach_oracle(frame: pd.DataFrame, truth_dir: Path) -> pd.DataFrame:
    """Add the simulator's true churn probability (`oracle_p`) for each (customer, as_of) row.

    Only evaluation calls this; truth never feeds a model.
    """
    hazard = read_table(truth_dir, "hazard").rename(
        columns={"month": "as_of", "hazard": "oracle_p"}
    )
    return frame.merge(hazard, on=["customer_id", "as_of"], how="left")
