"""Recommender evaluation: recall@k and NDCG@k against held-out adoptions, next to the oracle.

Relevant items of a holdout row are the items it adopted organically in the label window
(`rec_data.build_rec_labels`, mapped to plan items through the plan in force on ``as_of``); only
rows with at least one are scored. ``recall@k = |top-k ∩ relevant| / |relevant|`` and
``NDCG@k`` with binary gains ``1/log2(rank + 1)`` normalised by the ideal ordering, both
averaged over rows. The oracle ranks the same candidates by the simulator's true adoption
probabilities (`rec_data.oracle_probabilities`); `recall_at_k_oracle_ratio` is model ÷ oracle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from inference.recommender import action_to_items, prepare_inputs, structural_mask
from paycycle.errors import DataError
from training.recommender import data as rd


def relevant_items(holdout: pd.DataFrame) -> np.ndarray:
    """`(n, 9)` bool: the items each row adopted in its window."""
    y = holdout[list(rd.LABEL_COLUMNS)].to_numpy(float)
    tier = holdout["plan_tier"].round().to_numpy(int)
    return np.nan_to_num(action_to_items(y, tier)) > 0.5


def ranking_metrics(scores: np.ndarray, relevant: np.ndarray, k: int = 3) -> dict[str, float]:
    """Mean recall@k, NDCG@k and hit rate@k over rows with at least one relevant item.

    Args:
        scores: `(n, items)`; NaN marks items that cannot be recommended.
        relevant: `(n, items)` bool.
        k: cut-off.
    """
    scores, relevant = np.asarray(scores, float), np.asarray(relevant, bool)
    if scores.shape != relevant.shape:
        raise DataError(f"scores: shape {scores.shape} does not match labels {relevant.shape}")
    rows = relevant.any(axis=1)
    if not rows.any():
        raise DataError("holdout: no adoptions in the label window to evaluate against")
    s, r = np.nan_to_num(scores[rows], nan=-np.inf), relevant[rows]
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    picked = np.take_along_axis(s, order, axis=1)
    hits = np.take_along_axis(r, order, axis=1) & np.isfinite(picked)
    n_rel = r.sum(axis=1)
    discount = 1 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discount).sum(axis=1)
    ideal = np.array([discount[: min(m, k)].sum() for m in n_rel])
    return {
        f"recall_at_{k}": float((hits.sum(axis=1) / n_rel).mean()),
        f"ndcg_at_{k}": float((dcg / ideal).mean()),
        f"hit_rate_at_{k}": float(hits.any(axis=1).mean()),
        "eval_rows": float(rows.sum()),
    }


def oracle_item_scores(
    holdout: pd.DataFrame, truth_dir: Path, window_days: int = rd.WINDOW_DAYS
) -> np.ndarray:
    """`(n, 9)` true adoption probabilities of the recommendable items (NaN elsewhere)."""
    frame = prepare_inputs(holdout.drop(columns=["addons"], errors="ignore"))
    p = rd.oracle_probabilities(frame, truth_dir, window_days)
    p = np.where(structural_mask(frame) > 0, p, np.nan)
    return action_to_items(p, frame["plan_tier"].round().to_numpy(int))


def evaluate_recommender(
    scores: np.ndarray, holdout: pd.DataFrame, oracle_scores: np.ndarray | None = None, k: int = 3
) -> dict[str, float]:
    """Model metrics on `holdout`, with the oracle's and the ratios when `oracle_scores` given."""
    relevant = relevant_items(holdout)
    out = ranking_metrics(scores, relevant, k)
    if oracle_scores is not None:
        oracle = ranking_metrics(oracle_scores, relevant, k)
        for name in (f"recall_at_{k}", f"ndcg_at_{k}", f"hit_rate_at_{k}"):
            out[f"oracle_{name}"] = oracle[name]
            out[f"{name}_oracle_ratio"] = out[name] / oracle[name]
    return out
