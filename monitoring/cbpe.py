"""Label-free performance estimate: confidence-based performance estimation (CBPE).

The method NannyML publishes as CBPE (`nannyml` does not fit our lock, so it is implemented here
in NumPy): if the model's probabilities are calibrated, a row scored `p` *is* a positive with
probability `p`. Then, without any label,

* expected ROC AUC: every row counts as a fractional positive of weight `p` and a fractional
  negative of weight `1 − p`; the AUC is the weighted share of (positive, negative) pairs the
  score orders correctly (ties count half, a row is never paired with itself);
* expected Brier score of the raw score `s` against labels drawn with probability `p`:
  ``mean((s − p)² + p(1 − p))``, i.e. ``mean(p(1 − p))`` when `s` is itself calibrated;
* band: the realized metric's sampling distribution under the same assumption, by drawing the
  labels ``y ~ Bernoulli(p)`` `draws` times (seeded, vectorised by blocks of draws) and taking the
  central `level` quantiles of the AUC and Brier of each draw; then widened on each side by the
  estimator's own error on the last labelled window (`widen`): label noise alone ignores how far
  the model's calibration is from the truth, and its band covered the realized AUC in only 78%
  of the benchmark's windows.

Calibration comes from the last window whose labels are known (`fit_calibrator`): as NannyML
does, isotonic regression is used only when it is *needed*, i.e. when, cross-validated on that
window, it lowers the expected calibration error; otherwise the scores are taken as they are
(measured on the benchmark's windows: an isotonic fit on ~250 positives adds more noise to the
estimate than it removes from an already calibrated model).

The estimate's blind spot is the assumption itself: when *why* customers leave changes
(`concept_shift`), P(y | score) moves and the estimate cannot see it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

MAX_CELLS = 20_000_000  # draws × rows held at once (a bool matrix, ~20 MB)


@dataclass(frozen=True)
class Estimate:
    """Estimated ROC AUC and Brier score with their bands (the keys of `performance.json`)."""

    roc_auc: float
    roc_auc_low: float
    roc_auc_high: float
    brier: float
    brier_low: float
    brier_high: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def _isotonic(s: np.ndarray, y: np.ndarray):
    from sklearn.isotonic import IsotonicRegression

    return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(s, y)


def needs_calibration(
    scores: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0
) -> bool:
    """Whether isotonic calibration lowers the expected calibration error out of fold."""
    from monitoring.decision import expected_calibration_error

    fold = np.random.default_rng(seed).integers(0, folds, scores.size)
    fitted = np.empty_like(scores)
    for k in range(folds):
        train, test = fold != k, fold == k
        if len(np.unique(labels[train])) < 2 or not test.any():
            return False
        fitted[test] = _isotonic(scores[train], labels[train]).predict(scores[test])
    raw = expected_calibration_error(labels, scores)
    return expected_calibration_error(labels, fitted) < raw


def fit_calibrator(scores: np.ndarray, labels: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Map score → P(churn) from a labelled window (rows without a label dropped): isotonic
    when `needs_calibration`, else the scores themselves."""
    s, y = np.asarray(scores, float), np.asarray(labels, float)
    ok = np.isfinite(s) & np.isfinite(y)
    s, y = s[ok], y[ok]
    if len(np.unique(y)) < 2 or not needs_calibration(s, y):
        return lambda x: np.clip(np.asarray(x, float), 0.0, 1.0)
    iso = _isotonic(s, y)
    return lambda x: iso.predict(np.asarray(x, float))


def expected_roc_auc(scores: np.ndarray, p: np.ndarray) -> float:
    """ROC AUC expected when row i is positive with probability `p[i]` (ranking by `scores`)."""
    s, p = np.asarray(scores, float), np.asarray(p, float)
    order = np.argsort(s, kind="stable")
    s, p = s[order], p[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    pos = np.add.reduceat(p, starts)  # per group of tied scores
    neg = np.add.reduceat(1.0 - p, starts)
    self_pairs = np.add.reduceat(p * (1.0 - p), starts)
    below = np.cumsum(neg) - neg  # negative weight strictly below each group
    correct = (pos * below).sum() + 0.5 * (pos * neg - self_pairs).sum()
    pairs = pos.sum() * neg.sum() - self_pairs.sum()
    return float(correct / pairs) if pairs > 0 else float("nan")


def observed_error(
    scores: np.ndarray, labels: np.ndarray, calibrate: Callable[[np.ndarray], np.ndarray]
) -> tuple[float, float]:
    """|estimate − realized| of ROC AUC and Brier on a labelled window (what the estimator gets
    wrong where the truth is known); (0, 0) without both classes."""
    from sklearn.metrics import roc_auc_score

    s, y = np.asarray(scores, float), np.asarray(labels, float)
    ok = np.isfinite(s) & np.isfinite(y)
    s, y = s[ok], y[ok]
    if len(np.unique(y)) < 2:
        return 0.0, 0.0
    p = np.clip(np.asarray(calibrate(s), float), 0.0, 1.0)
    auc = abs(expected_roc_auc(s, p) - float(roc_auc_score(y, s)))
    brier = abs(float(np.mean((s - p) ** 2 + p * (1.0 - p))) - float(np.mean((s - y) ** 2)))
    return auc, brier


def widen(estimate: Estimate, auc_error: float, brier_error: float) -> Estimate:
    """The estimate with its bands widened by `auc_error` / `brier_error` on each side."""
    return Estimate(
        roc_auc=estimate.roc_auc,
        roc_auc_low=max(0.0, estimate.roc_auc_low - auc_error),
        roc_auc_high=min(1.0, estimate.roc_auc_high + auc_error),
        brier=estimate.brier,
        brier_low=max(0.0, estimate.brier_low - brier_error),
        brier_high=estimate.brier_high + brier_error,
    )


def _ranks(scores: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(scores)  # average ranks: ties count half, as in roc_auc_score


def estimate_performance(
    scores: np.ndarray,
    calibrated: np.ndarray | None = None,
    draws: int = 400,
    level: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """CBPE estimate of ROC AUC and Brier score for one window of predictions.

    Args:
        scores: the model's probabilities (what the realized metrics are computed on).
        calibrated: P(churn) per row (`fit_calibrator(...)(scores)`); `scores` when None.
        draws: simulated label sets behind the band.
        level: the band's central probability.
        seed: the draws' seed (same inputs ⇒ same band).

    Returns:
        The estimates and their bands.
    """
    s = np.asarray(scores, float)
    p = s if calibrated is None else np.clip(np.asarray(calibrated, float), 0.0, 1.0)
    n = s.size
    if n == 0:
        nan = float("nan")
        return Estimate(nan, nan, nan, nan, nan, nan)
    ranks, cost = _ranks(s), 1.0 - 2.0 * s
    rng = np.random.default_rng(seed)
    aucs, briers = [], []
    block = max(1, min(draws, MAX_CELLS // n))
    for done in range(0, draws, block):
        y = rng.random((min(block, draws - done), n)) < p
        n1 = y.sum(1)
        n0 = n - n1
        with np.errstate(invalid="ignore", divide="ignore"):
            aucs.append((y @ ranks - n1 * (n1 + 1) / 2) / (n1 * n0))
        briers.append((y @ cost) / n + np.mean(s**2))
    auc_draws, brier_draws = np.concatenate(aucs), np.concatenate(briers)
    auc_draws = auc_draws[np.isfinite(auc_draws)]
    tail = (1.0 - level) / 2 * 100
    lo, hi = (tail, 100 - tail)
    auc_lo, auc_hi = np.percentile(auc_draws, [lo, hi]) if auc_draws.size else (np.nan, np.nan)
    brier_lo, brier_hi = np.percentile(brier_draws, [lo, hi])
    return Estimate(
        roc_auc=expected_roc_auc(s, p),
        roc_auc_low=float(auc_lo),
        roc_auc_high=float(auc_hi),
        brier=float(np.mean((s - p) ** 2 + p * (1.0 - p))),
        brier_low=float(brier_lo),
        brier_high=float(brier_hi),
    )
