"""The feature contract shared by training, batch scoring and serving.

A model is trained on exactly these columns; a serving request may send only the seed's three
(`subscription_duration`, `failed_payments`, `usage_pattern`) and the rest take the documented
defaults, which describe a typical customer. `to_frame` is the one place raw records become a
validated feature frame, so the request path and the training path cannot disagree on columns,
types or ranges.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from paycycle import catalog
from paycycle.errors import DataError


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str  # "numeric" or "categorical"
    default: float | str
    low: float | None = None
    high: float | None = None
    doc: str = ""


REQUIRED = ("subscription_duration", "failed_payments", "usage_pattern")

FEATURES: tuple[Feature, ...] = (
    Feature("subscription_duration", "numeric", 12.0, 0, 1200, "months since signup"),
    Feature("failed_payments", "numeric", 0.0, 0, 1000, "failed payment attempts, last 90 days"),
    Feature(
        "usage_pattern", "numeric", 80.0, 0, 100_000, "% of the plan's included usage, last month"
    ),
    Feature("usage_trend", "numeric", 1.0, 0, 100, "last month's usage ÷ mean of the 3 before"),
    Feature("active_share", "numeric", 0.7, 0, 1, "share of last month's days with activity"),
    Feature(
        "days_since_last_failure", "numeric", 365.0, 0, 365, "days since a failed payment (cap 365)"
    ),
    Feature("unpaid_invoice", "numeric", 0.0, 0, 1, "latest invoice not paid as of the date"),
    Feature("monthly_charge_usd", "numeric", 49.0, 0, 100_000, "last bill per month, in USD"),
    Feature(
        "price_change",
        "numeric",
        0.0,
        -1,
        100,
        "relative change of the monthly bill vs 3 months before",
    ),
    Feature("plan_fit", "numeric", 0.0, -20, 20, "ln(usage ÷ included usage), last month"),
    Feature("plan_tier", "numeric", 2.0, 1, 4, "tier of the current plan"),
    Feature("support_tickets", "numeric", 0.0, 0, 10_000, "support tickets, last month"),
    Feature("addons_count", "numeric", 0.0, 0, len(catalog.ADDONS), "add-ons owned"),
    Feature("offers_90d", "numeric", 0.0, 0, 100, "retention offers received, last 90 days"),
    Feature("feat_storage_gb", "numeric", 5.0, 0, None, "storage used, last month"),
    Feature("feat_reports", "numeric", 3.0, 0, None, "reports run, last month"),
    Feature("feat_api_calls", "numeric", 1.0, 0, None, "API calls, last month"),
    Feature("feat_sms", "numeric", 20.0, 0, None, "SMS sent, last month"),
    Feature("segment", "categorical", "smb", doc="customer segment"),
    Feature("country", "categorical", "US", doc="billing country"),
    Feature("acquisition_channel", "categorical", "organic", doc="how the customer signed up"),
    Feature("cycle", "categorical", "monthly", doc="monthly or annual billing"),
)
BY_NAME = {f.name: f for f in FEATURES}
NUMERIC = [f.name for f in FEATURES if f.kind == "numeric"]
CATEGORICAL = [f.name for f in FEATURES if f.kind == "categorical"]
COLUMNS = NUMERIC + CATEGORICAL
VOCABULARY: dict[str, tuple[str, ...]] = {
    "segment": catalog.SEGMENTS,
    "country": tuple(catalog.COUNTRIES),
    "acquisition_channel": catalog.CHANNELS,
    "cycle": ("monthly", "annual"),
}


def _check_numeric(name: str, values: pd.Series, rows: pd.Index) -> pd.Series:
    f = BY_NAME[name]
    as_num = pd.to_numeric(values, errors="coerce")
    bad = as_num.isna() & values.notna()
    if bad.any():
        i = rows[bad.to_numpy()][0]
        raise DataError(f"{name}: expected a number, got {values[bad].iloc[0]!r} (record {i})")
    as_num = as_num.fillna(f.default).astype("float64")
    if not np.isfinite(as_num).all():
        raise DataError(
            f"{name}: must be finite (record {rows[~np.isfinite(as_num.to_numpy())][0]})"
        )
    for bound, op, word in ((f.low, np.less, "at least"), (f.high, np.greater, "at most")):
        if bound is not None and op(as_num, bound).any():
            i = rows[op(as_num, bound).to_numpy()][0]
            raise DataError(f"{name}: must be {word} {bound:g}, got {as_num.loc[i]:g} (record {i})")
    return as_num


def to_frame(
    records: Iterable[Mapping[str, Any]] | pd.DataFrame, strict: bool = True
) -> pd.DataFrame:
    """Validate raw feature records and return a frame with every column of `COLUMNS`.

    Args:
        records: dicts or a frame; must carry the `REQUIRED` columns; others default.
        strict: reject unknown category values (serving) instead of mapping them to the default.

    Returns:
        A frame with `COLUMNS` in order (float64 numerics, str categoricals), other columns kept.

    Raises:
        DataError: naming the field and the problem, e.g. a negative `failed_payments`.
    """
    df = records.copy() if isinstance(records, pd.DataFrame) else pd.DataFrame(list(records))
    if df.empty:
        raise DataError("customers: expected at least one customer, got an empty list")
    for name in REQUIRED:
        if name not in df.columns:
            raise DataError(f"{name}: required field is missing")
        if df[name].isna().any():
            raise DataError(
                f"{name}: required field is null (record {df.index[df[name].isna()][0]})"
            )
    for name in NUMERIC:
        df[name] = _check_numeric(name, df[name], df.index) if name in df else BY_NAME[name].default
    for name in CATEGORICAL:
        default = BY_NAME[name].default
        col = (
            df[name].fillna(default).astype(str)
            if name in df
            else pd.Series(default, index=df.index)
        )
        unknown = ~col.isin(VOCABULARY[name])
        if unknown.any():
            if strict:
                raise DataError(
                    f"{name}: unknown value {col[unknown].iloc[0]!r}; expected one of "
                    f"{', '.join(VOCABULARY[name])}"
                )
            col = col.where(~unknown, default)
        df[name] = col
    rest = [c for c in df.columns if c not in COLUMNS]
    return df[rest + COLUMNS]
