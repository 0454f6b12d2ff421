"""Retention offers: P(accept), the retention effect, expected value and a budgeted policy.

**P(accept | offer, customer)**: one L2 logistic regression per offer type on the features at
``offered_at`` (signed-log, standardised numerics, one-hot categoricals, ``|plan_fit|``), fitted on
the simulator's offer history. Logistic regression is calibrated on its training data by
construction (the score equations match predicted and observed acceptance overall and per
feature), which is what an expected value needs.

**Δretention (identification)**: the logging policy offers a uniformly random offer type to a
random 4% of customers at risk each month, so *being offered* is randomised but *accepting* is
not (acceptors are less engaged and more price-sensitive, and those also raise churn): comparing
acceptors with non-offered customers directly is biased. Declining an offer changes nothing, so
with ``c_N`` the churn rate over the effect window of non-offered customers in the same month
(customers still under an earlier accepted offer excluded), ``c_O`` that of customers offered
type ``o`` and ``a_o`` their acceptance rate, the intent-to-treat reduction ``c_N − c_O`` is all
carried by the acceptors, and their absolute churn reduction is the Wald/IV ratio
``Δ_o = (c_N − c_O) / a_o``. Their observed churn ``c_A`` is the treated outcome, so without the
offer they would have churned at ``c_A + Δ_o``, and the relative hazard reduction is
``r_o = Δ_o / (c_A + Δ_o)``. Each ``r_o`` is shrunk towards the precision-weighted mean of the
five (empirical Bayes, standard errors by the delta method) and clipped to ``[0, 0.9]``.

**Expected value** of offer ``o`` to customer ``i`` with monthly churn probability ``p``,
monthly revenue ``R`` and offer cost ``C`` (share of a month's plan price, as in the catalog;
the cost is only incurred when the offer is taken)::

    gain = R · Σ_{t=1..H} [S_t(p·(1 − r_o) for the first E months, p after) − S_t(p)]
    EV   = P(accept) · (gain − C)

where ``S_t(h) = Π_{k≤t} (1 − h_k)`` is survival after ``t`` months, ``H`` the CLV horizon and ``E``
the effect months. To first order ``gain ≈ P(churn over E months) · r_o · CLV``, i.e. the
``P(churn) · P(accept) · Δretention · CLV − cost`` rule with the cost paid only on acceptance.

**Policy**: the best-EV offer per customer, none when EV ≤ 0; under a monthly budget the
candidates are taken greedily by EV ÷ cost, skipping any that no longer fit. The budget is
charged the full cost of every offer made (as if all were accepted), so realised spend can
never exceed it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from paycycle import catalog
from paycycle.errors import DataError

OFFER_TYPES = tuple(catalog.OFFER_TYPES)
OFFER_COST_SHARE = np.array([catalog.OFFERS[o][0] for o in OFFER_TYPES])
PLAN_PRICE = np.array([p[3] for p in catalog.PLANS], dtype=float)
NONE = -1


def expected_revenue(
    revenue: np.ndarray, hazard: np.ndarray, horizon: int, effect: np.ndarray | None = None,
    effect_months: int = 3,
) -> np.ndarray:  # fmt: skip
    """`R · Σ_{t=1..H} S_t`: revenue of each month survived over the horizon.

    Args:
        revenue: monthly revenue per customer, `(n,)`.
        hazard: monthly churn probability, `(n,)` (or `(n, m)` for several scenarios).
        horizon: months.
        effect: hazard multiplier during the first `effect_months` (same shape as `hazard`).
        effect_months: how long `effect` lasts.
    """
    h = np.clip(np.asarray(hazard, float), 0, 1)
    mult = np.ones_like(h) if effect is None else np.asarray(effect, float)
    first = 1 - h * mult
    k = min(effect_months, horizon)
    surv_first = first[..., None] ** np.arange(1, k + 1)  # S_1..S_k
    total = surv_first.sum(axis=-1)
    if horizon > k:
        later = (1 - h)[..., None] ** np.arange(1, horizon - k + 1)
        total = total + first**k * later.sum(axis=-1)
    rev = np.asarray(revenue, float)
    return total * (rev[:, None] if h.ndim == 2 else rev)


def customer_economics(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Monthly revenue (last bill per month, else the plan price) and `(n, 5)` offer costs."""
    tier = frame["plan_tier"].round().clip(1, 4).astype(int).to_numpy()
    price = PLAN_PRICE[tier - 1]
    revenue = frame["monthly_charge_usd"].to_numpy(float)
    revenue = np.where(np.isfinite(revenue) & (revenue > 0), revenue, price)
    return revenue, np.round(price[:, None] * OFFER_COST_SHARE[None, :], 2)


def offer_gains(
    revenue: np.ndarray,
    p_churn: np.ndarray,
    effect: np.ndarray,
    horizon: int,
    effect_months: int,
) -> np.ndarray:
    """`(n, 5)` expected revenue kept by each offer if accepted (module docstring, `gain`)."""
    p = np.clip(np.asarray(p_churn, float), 0, 1)
    ph = np.repeat(p[:, None], len(OFFER_TYPES), axis=1)
    mult = np.broadcast_to(1 - np.asarray(effect, float), ph.shape)
    with_offer = expected_revenue(revenue, ph, horizon, mult, effect_months)
    return with_offer - expected_revenue(revenue, p, horizon)[:, None]


def choose_offers(ev: np.ndarray, cost: np.ndarray, budget: float | None) -> np.ndarray:
    """Best-EV offer per row (`NONE` when EV ≤ 0), then greedy by EV ÷ cost under `budget`.

    Args:
        ev: `(n, 5)` expected values.
        cost: `(n, 5)` nominal costs (charged to the budget in full).
        budget: total cost allowed; None = unlimited.

    Returns:
        `(n,)` chosen offer index per row, `NONE` for no offer.
    """
    ev, cost = np.asarray(ev, float), np.asarray(cost, float)
    if ev.shape != cost.shape:
        raise DataError(f"cost: shape {cost.shape} does not match expected values {ev.shape}")
    if budget is not None and not budget >= 0:
        raise DataError(f"budget: must be a non-negative number, got {budget}")
    rows = np.arange(len(ev))
    best = np.argmax(np.nan_to_num(ev, nan=-np.inf), axis=1) if len(ev) else rows
    best_ev = ev[rows, best] if len(ev) else np.zeros(0)
    choice = np.where(np.isfinite(best_ev) & (best_ev > 0), best, NONE)
    if budget is None:
        return choice
    cands = np.flatnonzero(choice != NONE)
    c = cost[cands, best[cands]]
    ratio = best_ev[cands] / np.maximum(c, 1e-9)
    order = cands[np.argsort(-ratio, kind="stable")]
    out = np.full(len(ev), NONE)
    spent = 0.0
    for i in order:
        ci = float(cost[i, best[i]])
        if spent + ci <= budget:
            out[i] = best[i]
            spent += ci
    return out


def _reason(o: int, p: float, pa: float, gain: float, cost: float, ev: float, fits: bool) -> str:
    name = OFFER_TYPES[o]
    if ev <= 0:
        return f"no offer: best is {name} with EV {ev:.2f} USD ≤ 0 (churn risk {p:.0%})"
    why = (
        f"churn risk {p:.0%}, P(accept) {pa:.0%}, keeps ~{gain:.0f} USD of revenue "
        f"for {cost:.0f} USD ⇒ EV +{ev:.2f} USD"
    )
    if not fits:
        return f"no offer: {name} ({why}) lost to higher EV per USD under the budget"
    return f"{name}: {why}, best of {len(OFFER_TYPES)} offers"


@dataclass
class OfferPolicy:
    """Fitted P(accept) and retention effects; `decide` applies the EV rule and the budget."""

    accept: Any  # `.predict(frame) -> (n, 5)` P(accept): sklearn-fitted or `LinearAcceptModel`
    effects: pd.DataFrame  # estimate_retention_effect output, indexed by offer type
    horizon_months: int = 12
    effect_months: int = 3

    @property
    def effect(self) -> np.ndarray:
        return self.effects.reindex(list(OFFER_TYPES))["effect"].fillna(0).to_numpy(float)

    def evaluate(self, frame: pd.DataFrame, p_churn: np.ndarray) -> dict[str, np.ndarray]:
        """Per customer and offer: p_accept, gain, cost, ev `(n, 5)`; revenue `(n,)`."""
        p = np.asarray(p_churn, float).reshape(-1)
        if len(p) != len(frame):
            raise DataError(f"p_churn: expected {len(frame)} values, got {len(p)}")
        if not (np.isfinite(p) & (p >= 0) & (p <= 1)).all():
            raise DataError("p_churn: churn probabilities must be finite and in [0, 1]")
        revenue, cost = customer_economics(frame)
        p_acc = self.accept.predict(frame)
        gain = offer_gains(revenue, p, self.effect, self.horizon_months, self.effect_months)
        ev = p_acc * (gain - cost)
        return {"p_accept": p_acc, "gain": gain, "cost": cost, "ev": ev, "revenue": revenue}

    def decide(
        self, frame: pd.DataFrame, p_churn: np.ndarray, budget: float | None
    ) -> pd.DataFrame:
        """One row per customer: chosen `offer_type` (None for no offer), EV, cost, reason.

        Args:
            frame: features at the decision date (`features.build.build_features`).
            p_churn: P(churn in the next 30 days) per row (the churn model's score).
            budget: USD of nominal offer cost allowed; None = unlimited.
        """
        e = self.evaluate(frame, p_churn)
        choice = choose_offers(e["ev"], e["cost"], budget)
        rows = np.arange(len(frame))
        best = np.argmax(e["ev"], axis=1)
        shown = np.where(choice == NONE, best, choice)
        p = np.asarray(p_churn, float).reshape(-1)
        pick = {k: e[k][rows, shown] for k in ("p_accept", "gain", "cost", "ev")}
        reasons = [
            _reason(o, pi, pa, g, c, v, ch != NONE)
            for o, pi, pa, g, c, v, ch in zip(
                shown, p, pick["p_accept"], pick["gain"], pick["cost"], pick["ev"], choice,
                strict=True,
            )
        ]  # fmt: skip
        chosen = choice != NONE
        return pd.DataFrame(
            {
                "customer_id": frame["customer_id"].to_numpy() if "customer_id" in frame else rows,
                "offer_type": np.where(chosen, np.array(OFFER_TYPES, object)[shown], None),
                "expected_value": np.where(chosen, pick["ev"], np.minimum(pick["ev"], 0.0)),
                "cost": np.where(chosen, pick["cost"], 0.0),
                "p_churn": p,
                "p_accept": pick["p_accept"],
                "monthly_revenue": e["revenue"],
                "reason": reasons,
            }
        )
