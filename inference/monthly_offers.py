"""The month's retention offers: the offer policy champion applied to every customer at risk.

Batch decisions for people (a CSV) and for the billing monitor's `retention_offer` notices
(Parquet), with the churn and policy versions that made them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from inference.registry import CHAMPION, CHURN_MODEL, OFFERS_MODEL, load_scorer
from paycycle.config import Settings
from paycycle.errors import DataError


@dataclass
class MonthlyOffers:
    """One month's offer decisions under a budget, as written for the billing monitor."""

    as_of: dt.date
    budget: float
    decisions: pd.DataFrame  # every customer at risk, with or without an offer
    chosen: pd.DataFrame  # the offers made, by expected value
    csv_path: Path
    notify_path: Path


def month_after_usage(events: Mapping[str, pd.DataFrame]) -> dt.date:
    """The first day of the month after the last usage month (the next decision date)."""
    months = events["usage"]["month"]
    if months.empty:
        raise DataError("usage: no usage rows; simulate or load data first")
    return (months.max() + pd.offsets.MonthBegin(1)).date()


def decide_month(
    settings: Settings, budget: float | None = None, as_of: dt.date | None = None
) -> MonthlyOffers:
    """Choose the month's offers with `paycycle-offers@champion` and the churn champion.

    Writes every chosen offer to `offers.output_dir/offers_<date>.csv` for people and to
    `notify.offer_policy_path` (Parquet) for the billing monitor's `retention_offer` notices.

    Raises:
        DataError: negative budget or no usage data.
        ConfigError: a champion is missing (train and promote first).
    """
    from features.build import build_features, load_events

    params = settings.params.offers
    budget = params.budget if budget is None else budget
    if budget < 0:
        raise DataError(f"budget: must be at least 0, got {budget:g}")
    events = load_events(settings.raw_dir)
    day = as_of or month_after_usage(events)
    frame = build_features(events, day)
    churn, churn_version = load_scorer(CHURN_MODEL, CHAMPION, settings)
    policy, policy_version = load_scorer(OFFERS_MODEL, CHAMPION, settings)
    decisions = policy.decide(frame, churn(frame), budget)
    decisions.insert(1, "as_of", pd.Timestamp(day))
    decisions["churn_model_version"] = churn_version
    decisions["policy_version"] = policy_version
    chosen = decisions.loc[decisions["offer_type"].notna()].sort_values(
        "expected_value", ascending=False
    )
    out_dir = settings.path(params.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    csv_path = out_dir / f"offers_{day.isoformat()}.csv"
    chosen.to_csv(csv_path, index=False)
    notify_path = settings.path(settings.params.notify.offer_policy_path)
    notify_path.parent.mkdir(parents=True, exist_ok=True)
    chosen.to_parquet(notify_path, index=False)
    return MonthlyOffers(day, budget, decisions, chosen, csv_path, notify_path)
