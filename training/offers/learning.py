"""What the offer policy learns from the logged offers: P(accept) and the retention effect.

See `inference/offers.py` for the identification argument and the formulas.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features import schema
from features.build import active_customers, build_features
from inference.offers import OFFER_TYPES, OfferPolicy
from paycycle.config import OfferParams
from paycycle.errors import DataError

MAX_EFFECT = 0.9


def _ts(value: dt.date | str | pd.Timestamp) -> pd.Timestamp:
    return pd.Timestamp(value).normalize()


def _model_columns(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[list(schema.COLUMNS)].copy()
    out["abs_plan_fit"] = frame["plan_fit"].abs()
    return out


def offer_history(
    events: Mapping[str, pd.DataFrame], before: dt.date | str | None = None
) -> pd.DataFrame:
    """Every logged offer (made before `before`) with the customer's features at `offered_at`."""
    offers = events["offers"]
    if before is not None:
        offers = offers.loc[offers["offered_at"] < _ts(before)]
    usage = events["usage"]["month"]
    if len(usage):  # features need one complete usage month before the offer
        offers = offers.loc[offers["offered_at"] >= usage.min() + pd.offsets.MonthBegin(1)]
    if offers.empty:
        raise DataError("offers: no offer history to learn acceptance from")
    frames = []
    for day, group in offers.groupby("offered_at"):
        feats = build_features(events, day)
        frames.append(group.merge(feats.drop(columns=["as_of"]), on="customer_id", how="inner"))
    return pd.concat(frames, ignore_index=True)


@dataclass
class AcceptModel:
    """P(accept) per offer type: one fitted sklearn pipeline (or a constant) per type."""

    models: dict[str, Any]
    rates: dict[str, float]
    rows: dict[str, int] = field(default_factory=dict)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """`(n, 5)` acceptance probabilities in `OFFER_TYPES` order."""
        x = _model_columns(frame)
        out = np.empty((len(frame), len(OFFER_TYPES)))
        for j, o in enumerate(OFFER_TYPES):
            model = self.models.get(o)
            out[:, j] = self.rates[o] if model is None else model.predict_proba(x)[:, 1]
        return out


def _pipeline(c: float, seed: int):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

    def signed_log(x):
        return np.sign(x) * np.log1p(np.abs(x))

    numeric = make_pipeline(
        SimpleImputer(strategy="median"),
        FunctionTransformer(signed_log),
        StandardScaler(),
    )
    categories = [list(schema.VOCABULARY[c]) for c in schema.CATEGORICAL]
    prep = ColumnTransformer(
        [
            ("num", numeric, [*schema.NUMERIC, "abs_plan_fit"]),
            (
                "cat",
                OneHotEncoder(categories=categories, handle_unknown="ignore"),
                list(schema.CATEGORICAL),
            ),
        ]  # fmt: skip
    )
    return make_pipeline(prep, LogisticRegression(C=c, max_iter=2000, random_state=seed))


def fit_accept_model(history: pd.DataFrame, c: float = 0.3, seed: int = 0) -> AcceptModel:
    """Fit P(accept) per offer type on `offer_history` rows.

    Args:
        history: offers with `offer_type`, `accepted` and the features at `offered_at`.
        c: inverse L2 strength of each logistic regression.
        seed: solver seed.
    """
    models, rates, rows = {}, {}, {}
    for o in OFFER_TYPES:
        part = history.loc[history["offer_type"] == o]
        y = part["accepted"].astype(int).to_numpy()
        rows[o] = len(part)
        rates[o] = float(y.mean()) if len(y) else 0.0
        if len(part) >= 30 and 5 <= y.sum() <= len(y) - 5:
            models[o] = _pipeline(c, seed).fit(_model_columns(part), y)
    if not rows or sum(rows.values()) == 0:
        raise DataError("offers: no offer history to learn acceptance from")
    return AcceptModel(models, rates, rows)


def _months_back(t: pd.Timestamp, months: int) -> pd.Timestamp:
    return t - pd.DateOffset(months=months)


def estimate_retention_effect(
    events: Mapping[str, pd.DataFrame], before: dt.date | str, effect_months: int = 3
) -> pd.DataFrame:
    """Relative churn-hazard reduction among acceptors per offer type (module docstring).

    Uses offer months whose effect window closed by `before`.

    Returns:
        One row per offer type: offered, accept_rate, churn_control, churn_offered,
        churn_acceptors, effect_abs, effect_raw, se, effect (shrunk, clipped).
    """
    t = _ts(before)
    offers, subs = events["offers"], events["subscriptions"]
    cancelled = subs.set_index("customer_id")["cancelled_at"]
    accepted = offers.loc[offers["accepted"]]
    rows = []
    for day in sorted(offers["offered_at"].unique()):
        day = pd.Timestamp(day)
        end = day + pd.DateOffset(months=effect_months)
        if end > t:
            continue
        base = active_customers(events, day)["customer_id"]
        churn = cancelled.reindex(base).lt(end).to_numpy()
        month = offers.loc[offers["offered_at"] == day].set_index("customer_id")
        under = accepted.loc[
            (accepted["offered_at"] < day)
            & (accepted["offered_at"] >= _months_back(day, effect_months - 1)),
            "customer_id",
        ]
        control = ~base.isin(month.index) & ~base.isin(under)
        if control.sum() == 0:
            continue
        c_n = churn[control.to_numpy()].mean()
        offered = base.isin(month.index).to_numpy()
        ids = base[offered]
        rows.append(
            pd.DataFrame(
                {
                    "offer_type": month.loc[ids, "offer_type"].to_numpy(),
                    "accepted": month.loc[ids, "accepted"].to_numpy(bool),
                    "churned": churn[offered].astype(float),
                    "control_rate": c_n,
                }
            )
        )
    if not rows:
        raise DataError(
            f"offers: no offer month before {t.date()} with a closed {effect_months}-month window"
        )
    data = pd.concat(rows, ignore_index=True)
    out = []
    for o in OFFER_TYPES:
        d = data.loc[data["offer_type"] == o]
        n = len(d)
        a = d["accepted"].mean() if n else np.nan
        diff = (d["control_rate"] - d["churned"]).to_numpy()
        itt = diff.mean() if n else np.nan
        c_a = d.loc[d["accepted"], "churned"].mean() if n else np.nan
        eff_abs = itt / a if n and a > 0 else np.nan
        denom = c_a + eff_abs
        raw = eff_abs / denom if np.isfinite(denom) and denom > 0 else np.nan
        se = diff.std(ddof=1) / np.sqrt(max(n, 2)) / (a * denom) if np.isfinite(raw) else np.inf
        out.append(
            {
                "offer_type": o,
                "offered": n,
                "accept_rate": a,
                "churn_control": float(d["control_rate"].mean()) if n else np.nan,
                "churn_offered": float(d["churned"].mean()) if n else np.nan,
                "churn_acceptors": c_a,
                "effect_abs": eff_abs,
                "effect_raw": raw,
                "se": se,
            }
        )
    table = pd.DataFrame(out).set_index("offer_type")
    table["effect"] = _shrink(table["effect_raw"].to_numpy(), table["se"].to_numpy())
    return table


def _shrink(raw: np.ndarray, se: np.ndarray) -> np.ndarray:
    """Empirical-Bayes shrinkage of per-type estimates towards their precision-weighted mean."""
    ok = np.isfinite(raw) & np.isfinite(se) & (se > 0)
    if not ok.any():
        return np.zeros_like(raw)
    w = 1 / se[ok] ** 2
    mean = float(np.sum(w * raw[ok]) / np.sum(w))
    tau2 = (
        max(float(np.var(raw[ok], ddof=1)) - float(np.mean(se[ok] ** 2)), 0.0)
        if ok.sum() > 1
        else 0.0
    )
    weight = np.where(ok, tau2 / (tau2 + np.where(ok, se, 1.0) ** 2), 0.0)
    return np.clip(weight * np.nan_to_num(raw) + (1 - weight) * mean, 0.0, MAX_EFFECT)


def fit_offer_policy(
    events: Mapping[str, pd.DataFrame], as_of: dt.date | str, params: OfferParams
) -> OfferPolicy:
    """Learn P(accept) from offers before `as_of` and the effects from closed offer windows."""
    history = offer_history(events, before=as_of)
    accept = fit_accept_model(history, c=params.accept_c, seed=params.seed)
    effects = estimate_retention_effect(events, as_of, params.effect_months)
    return OfferPolicy(accept, effects, params.horizon_months, params.effect_months)
