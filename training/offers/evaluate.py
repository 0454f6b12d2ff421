"""Offer policies scored against the simulator's truth: realised net retained revenue.

For customers at risk on ``as_of`` the truth gives the month's churn hazard ``h`` and, per offer,
the acceptance probability ``q`` and the hazard multiplier ``m``. The expected revenue over the
next ``H`` months of an offer ``o`` with cost ``C`` is computed exactly (no sampling)::

    net = q · (R · Σ_t S_t(h·m for E months, h after) − C) + (1 − q) · R · Σ_t S_t(h)

and a customer without an offer keeps ``R · Σ_t S_t(h)`` (`inference.offers.expected_revenue`).
The hazard is held at the ``as_of`` month's value over the horizon. Summed over customers this
is the net retained revenue of a policy; the baselines are no offers, ``discount_20`` to everyone
above 0.5 predicted churn probability, and uniformly random offers to random customers until
the same budget is spent.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from inference.offers import NONE, expected_revenue
from paycycle.errors import DataError
from training.offers.learning import OFFER_TYPES

THRESHOLD = 0.5
THRESHOLD_OFFER = "discount_20"


@dataclass
class Truth:
    """The simulator's truth for a list of customers on one date."""

    hazard: np.ndarray  # (n,)
    p_accept: np.ndarray  # (n, 5)
    multiplier: np.ndarray  # (n, 5)


def load_truth(truth_dir: Path, customer_ids: np.ndarray, as_of: dt.date | str) -> Truth:
    """Hazard on `as_of` and offer response per customer (evaluation only; never a feature)."""
    from paycycle.tables import read_table

    t = pd.Timestamp(as_of).normalize()
    hazard = read_table(truth_dir, "hazard")
    hazard = hazard.loc[hazard["month"] == t].set_index("customer_id")["hazard"]
    h = hazard.reindex(customer_ids).to_numpy(float)
    if np.isnan(h).any():
        raise DataError(f"{truth_dir}: no true hazard on {t.date()} for some customers")
    resp = read_table(truth_dir, "offer_response")
    p = resp.pivot(index="customer_id", columns="offer_type", values="p_accept")
    m = resp.pivot(index="customer_id", columns="offer_type", values="hazard_multiplier")
    cols = list(OFFER_TYPES)
    return Truth(
        h,
        p.reindex(index=customer_ids, columns=cols).to_numpy(float),
        m.reindex(index=customer_ids, columns=cols).to_numpy(float),
    )


def realised_net_revenue(
    choice: np.ndarray,
    revenue: np.ndarray,
    cost: np.ndarray,
    truth: Truth,
    horizon: int = 12,
    effect_months: int = 3,
) -> float:
    """Expected net retained revenue (USD) of offering `choice[i]` (or nothing) to each row."""
    choice = np.asarray(choice, int)
    rows = np.arange(len(choice))
    base = expected_revenue(revenue, truth.hazard, horizon)
    o = np.where(choice == NONE, 0, choice)
    m = truth.multiplier[rows, o]
    treated = expected_revenue(revenue, truth.hazard, horizon, m, effect_months)
    q = truth.p_accept[rows, o]
    offered = q * (treated - cost[rows, o]) + (1 - q) * base
    return float(np.where(choice == NONE, base, offered).sum())


def threshold_choice(p_churn: np.ndarray, threshold: float = THRESHOLD) -> np.ndarray:
    """`discount_20` to everyone with predicted churn probability above `threshold`."""
    return np.where(np.asarray(p_churn) > threshold, OFFER_TYPES.index(THRESHOLD_OFFER), NONE)


def random_choice(cost: np.ndarray, budget: float, seed: int) -> np.ndarray:
    """Random offers to random customers until the next one would exceed `budget`."""
    rng = np.random.default_rng(seed)
    n = len(cost)
    offer = rng.integers(0, len(OFFER_TYPES), n)
    out = np.full(n, NONE)
    spent = 0.0
    for i in rng.permutation(n):
        c = float(cost[i, offer[i]])
        if spent + c > budget:
            break
        out[i] = offer[i]
        spent += c
    return out


def spend(choice: np.ndarray, cost: np.ndarray) -> float:
    """Nominal cost of the offers made."""
    rows = np.flatnonzero(np.asarray(choice) != NONE)
    return float(cost[rows, np.asarray(choice)[rows]].sum())


def compare_policies(
    policy,
    frame: pd.DataFrame,
    p_churn: np.ndarray,
    truth: Truth,
    budget: float,
    seed: int = 0,
) -> dict[str, float]:
    """Net retained revenue of the policy and the three baselines on the same customers.

    Args:
        policy: a fitted `inference.offers.OfferPolicy`.
        frame: features of the customers at risk on the decision date.
        p_churn: predicted P(churn) per row (the policy and the threshold baseline use it).
        truth: `load_truth` for the same rows.
        budget: monthly budget (policy and random baseline).
        seed: the random baseline's seed.

    Returns:
        `net_revenue_{policy,no_offers,threshold,random}`, `spend_*` and `offers_*`.
    """
    from inference.offers import choose_offers

    e = policy.evaluate(frame, p_churn)
    revenue, cost = e["revenue"], e["cost"]
    choices = {
        "policy": choose_offers(e["ev"], cost, budget),
        "no_offers": np.full(len(frame), NONE),
        "threshold": threshold_choice(p_churn),
        "random": random_choice(cost, budget, seed),
    }
    out: dict[str, float] = {}
    for name, choice in choices.items():
        out[f"net_revenue_{name}"] = realised_net_revenue(
            choice, revenue, cost, truth, policy.horizon_months, policy.effect_months
        )
        out[f"spend_{name}"] = spend(choice, cost)
        out[f"offers_{name}"] = float((choice != NONE).sum())
    return out
