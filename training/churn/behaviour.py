"""Behavioural model tests run through a scorer (the same one the service loads).

Directional: more failed payments ⇒ higher churn risk. Invariance: the customer id does not
change a score. Minimum functionality: the seed's three customers get strictly increasing risk
(3 failed payments and 20% use is the riskiest). Each check returns a list of problems.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from features import schema

SEED_EXAMPLE = {
    "subscription_duration": [10, 15, 3],
    "failed_payments": [0, 1, 3],
    "usage_pattern": [80, 50, 20],
}
Scorer = Callable[[Any], np.ndarray]


def seed_frame() -> pd.DataFrame:
    """The seed's example DataFrame, completed with schema defaults."""
    return schema.to_frame(pd.DataFrame(SEED_EXAMPLE))


def check_seed_monotone(scorer: Scorer) -> list[str]:
    p = np.asarray(scorer(seed_frame()), float)
    if not (np.diff(p) > 0).all():
        return [f"seed customers not strictly increasing in risk: {np.round(p, 4).tolist()}"]
    return []


def check_directional(
    scorer: Scorer, sample: pd.DataFrame | None = None, min_share: float = 0.9
) -> list[str]:
    """Two more failed payments must raise risk for (nearly) every customer, and on average."""
    base = seed_frame() if sample is None else pd.concat([seed_frame(), sample], ignore_index=True)
    base = base[[c for c in base.columns if c in schema.COLUMNS or c == "customer_id"]]
    worse = base.assign(failed_payments=base["failed_payments"] + 2)
    before, after = np.asarray(scorer(base), float), np.asarray(scorer(worse), float)
    share = float((after > before).mean())
    if share < min_share or after.mean() <= before.mean():
        return [
            f"more failed payments raised risk for only {share:.0%} of customers "
            f"(mean {before.mean():.4f} → {after.mean():.4f})"
        ]
    return []


def check_invariance(scorer: Scorer, sample: pd.DataFrame | None = None) -> list[str]:
    """Scores must not depend on `customer_id` (nor on row order)."""
    base = seed_frame() if sample is None else sample.reset_index(drop=True)
    a = base.assign(customer_id=np.arange(len(base)))
    b = base.assign(customer_id=np.arange(len(base)) + 987_654)
    pa, pb = np.asarray(scorer(a), float), np.asarray(scorer(b), float)
    pr = np.asarray(scorer(a.iloc[::-1]), float)[::-1]
    if not (np.allclose(pa, pb, atol=1e-6) and np.allclose(pa, pr, atol=1e-6)):
        return ["scores change with customer_id or row order"]
    return []


def churn_checks(scorer: Scorer, sample: pd.DataFrame | None = None) -> list[str]:
    """All behavioural checks plus the service's promotion smoke test when it is installed."""
    problems = [
        *check_seed_monotone(scorer),
        *check_directional(scorer, sample),
        *check_invariance(scorer, sample),
    ]
    try:
        from inference.smoke import smoke_test
    except ImportError:  # serving not installed alongside training
        return problems
    return problems + [f"smoke: {p}" for p in smoke_test(scorer)]
