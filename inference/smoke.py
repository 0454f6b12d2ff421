"""The promotion smoke test: would this candidate answer correctly if the service loaded it?

Promotion (`training.registry.promote(..., checks=...)`) calls `smoke_test(scorer)` with the
candidate loaded by `inference.registry.load_scorer`, the loader the service uses; the scorer
is then compiled and fed request columns exactly as the service does (`inference.compiled`,
`features.columns`). Problems returned ⇒ the alias does not move.
"""

from __future__ import annotations

import numpy as np

from features.columns import customers_to_columns

# The seed's three customers, from least to most at risk.
SEED_CUSTOMERS: list[dict[str, float]] = [
    {"subscription_duration": 10.0, "failed_payments": 0.0, "usage_pattern": 80.0},
    {"subscription_duration": 15.0, "failed_payments": 1.0, "usage_pattern": 50.0},
    {"subscription_duration": 3.0, "failed_payments": 3.0, "usage_pattern": 20.0},
]


def smoke_test(scorer) -> list[str]:
    """Score the seed's three customers through the service's input path.

    Args:
        scorer: a compiled churn scorer (`score(columns) -> probabilities`).

    Returns:
        Problems found; empty means the candidate may be promoted.
    """
    from inference.compiled import compile_scorer

    try:
        probs = compile_scorer(scorer)(customers_to_columns(SEED_CUSTOMERS))
    except Exception as exc:
        return [f"scoring the seed customers failed: {exc.__class__.__name__}: {exc}"]
    probs = np.asarray(probs, dtype=float).reshape(-1)
    if probs.shape != (len(SEED_CUSTOMERS),):
        return [f"expected {len(SEED_CUSTOMERS)} probabilities, got shape {probs.shape}"]
    problems = []
    if not np.isfinite(probs).all() or (probs < 0).any() or (probs > 1).any():
        problems.append(
            f"probabilities must be finite and in [0, 1], got {probs.round(4).tolist()}"
        )
    elif not (np.diff(probs) > 0).all():
        problems.append(
            "seed customers must get strictly increasing churn probabilities "
            f"(low → high risk), got {probs.round(4).tolist()}"
        )
    return problems
