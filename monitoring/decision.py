"""The drift decision: one documented rule over per-feature statistics, predictions and quality.

Rule (thresholds in `params.yaml` → `drift:`; names below are its keys):

1. **Feature drift.** For each feature, `monitoring.stats.column_drift` gives an effect size
   (normed Wasserstein for continuous numerics, PSI for categoricals and counts/flags) and a
   G-test p-value. The feature *drifted* when its effect ≥ its threshold (`feature_thresholds`
   [name], else `wasserstein_threshold` / `psi_threshold` by measure) **and** p < `alpha`. The
   effect threshold keeps a million-row window from flagging negligible moves (everything is
   significant at that size); the p-value keeps a small window from flagging noise.
2. **Weighted share.** `share = Σ wᵢ·driftedᵢ / Σ wᵢ` with
   `wᵢ = (1 − importance_mix)/n + importance_mix · importanceᵢ / Σ importance`: every feature
   counts a little, the ones the model relies on count more. Data drift when
   `share ≥ share_threshold`.
3. **Prediction drift** (when predictions are given): PSI of the scores ≥
   `prediction_psi_threshold` and p < `alpha`.
4. **Quality drop** (when labels are given for both windows): AUC fell by ≥ `auc_drop`, or the
   expected calibration error rose by ≥ `calibration_rise`.

Verdict: drift when any of 2–4 holds. The reasons are kept, so a report says *why*.

5. **Realized performance** (`performance_drop`, once a month's outcomes are known, per model
   version against its own previous month, `monitoring.performance`): ROC AUC fell by ≥
   `performance_auc_drop` or the Brier score rose by ≥ `performance_brier_rise` (tuned by
   `benchmarks/tune_performance.py` on seeds the benchmark does not report). It catches what
   1–3 cannot: a change in *why* customers leave with the inputs unchanged (`concept_shift`).
   The monitor loop retrains on it through the same path and cooldown as on data drift.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features import schema
from monitoring import stats


@dataclass(frozen=True)
class Thresholds:
    """The decision's knobs; `from_params` reads them from `settings.params.drift`."""

    wasserstein_threshold: float = 0.1
    psi_threshold: float = 0.1
    alpha: float = 0.001
    share_threshold: float = 0.1
    importance_mix: float = 0.5
    prediction_psi_threshold: float = 0.1
    auc_drop: float = 0.03
    calibration_rise: float = 0.03
    performance_auc_drop: float = 0.05
    performance_brier_rise: float = 0.01
    bins: int = 10
    feature_thresholds: Mapping[str, float] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: Any) -> Thresholds:
        """Build from a `DriftParams` section (or any object with the same attributes)."""
        names = [f for f in cls.__dataclass_fields__ if hasattr(params, f)]
        return cls(**{n: getattr(params, n) for n in names})

    def for_feature(self, column: str, measure: str) -> float:
        """The effect threshold of one feature (override, else by measure)."""
        if column in self.feature_thresholds:
            return float(self.feature_thresholds[column])
        return self.wasserstein_threshold if measure == "wasserstein" else self.psi_threshold


@dataclass(frozen=True)
class Quality:
    """Model quality on one labelled window."""

    auc: float
    ece: float
    rows: int


@dataclass
class Decision:
    """The verdict and everything that led to it (JSON-ready through `to_dict`)."""

    drift: bool
    share: float
    data_drift: bool
    prediction_drift: bool | None
    quality_drop: bool | None
    reasons: list[str]
    features: list[dict[str, Any]]
    prediction: dict[str, float] | None = None
    quality: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def univariate_importance(frame: pd.DataFrame, labels: pd.Series | np.ndarray) -> dict[str, float]:
    """|2·AUC − 1| of each feature alone against the churn label (categoricals target-encoded).

    A model-free stand-in when the champion has not logged its own importances.
    """
    from sklearn.metrics import roc_auc_score

    y = np.asarray(labels, dtype=float)
    ok = np.isfinite(y)
    if ok.sum() == 0 or len(np.unique(y[ok])) < 2:
        return {c: 1.0 for c in schema.COLUMNS}
    out = {}
    for col in schema.COLUMNS:
        x = frame[col][ok]
        if col in schema.CATEGORICAL:
            x = x.map(pd.Series(y[ok], index=x.index).groupby(x).mean())
        out[col] = abs(2 * roc_auc_score(y[ok], x.to_numpy(float)) - 1)
    return out


def weights(columns: list[str], importance: Mapping[str, float] | None, mix: float) -> np.ndarray:
    """Per-feature weights summing to 1 (see rule step 2)."""
    n = len(columns)
    uniform = np.full(n, 1.0 / n)
    if not importance:
        return uniform
    imp = np.array([max(float(importance.get(c, 0.0)), 0.0) for c in columns])
    if imp.sum() <= 0:
        return uniform
    return (1 - mix) * uniform + mix * imp / imp.sum()


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate − mean predicted| over equal-count probability bins, row-weighted."""
    order = np.argsort(p)
    err = 0.0
    for chunk in np.array_split(order, bins):
        if chunk.size:
            err += chunk.size * abs(y[chunk].mean() - p[chunk].mean())
    return float(err / max(len(p), 1))


def model_quality(labels: np.ndarray, predictions: np.ndarray) -> Quality | None:
    """AUC and ECE of predictions against 0/1 labels (rows with a missing label are ignored)."""
    from sklearn.metrics import roc_auc_score

    y, p = np.asarray(labels, float), np.asarray(predictions, float)
    ok = np.isfinite(y) & np.isfinite(p)
    y, p = y[ok], p[ok]
    if y.size == 0 or len(np.unique(y)) < 2:
        return None
    return Quality(float(roc_auc_score(y, p)), expected_calibration_error(y, p), int(y.size))


def performance_drop(
    reference: Mapping[str, Any] | None, current: Mapping[str, Any] | None, thresholds: Thresholds
) -> tuple[bool, list[str]]:
    """Rule 5: did the ROC AUC fall or the Brier score rise past the thresholds?

    Args:
        reference: `roc_auc` and `brier` of the previous labelled window (None: no reference).
        current: the same keys for the window checked: realized, or estimated to ask the same
            question of the label-free estimate.
        thresholds: `performance_auc_drop`, `performance_brier_rise`.

    Returns:
        (fired, reasons); never fires without both windows.
    """
    if not reference or not current:
        return False, []
    auc_fall = float(reference["roc_auc"]) - float(current["roc_auc"])
    brier_rise = float(current["brier"]) - float(reference["brier"])
    reasons = []
    if auc_fall >= thresholds.performance_auc_drop:
        reasons.append(f"ROC AUC fell {auc_fall:.3f} >= {thresholds.performance_auc_drop}")
    if brier_rise >= thresholds.performance_brier_rise:
        reasons.append(f"Brier rose {brier_rise:.4f} >= {thresholds.performance_brier_rise}")
    return bool(reasons), reasons


def feature_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    thresholds: Thresholds,
    importance: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """Per-feature statistics plus the rule's columns `threshold`, `drifted`, `weight`."""
    numeric = [c for c in schema.NUMERIC if c in reference and c in current]
    categorical = [c for c in schema.CATEGORICAL if c in reference and c in current]
    table = stats.drift_table(reference, current, numeric, categorical, thresholds.bins)
    table["threshold"] = [
        thresholds.for_feature(c, m) for c, m in zip(table["column"], table["measure"], strict=True)
    ]
    table["drifted"] = (table["effect"] >= table["threshold"]) & (
        table["p_value"] < thresholds.alpha
    )
    table["weight"] = weights(list(table["column"]), importance, thresholds.importance_mix)
    return table


def decide(
    table: pd.DataFrame,
    thresholds: Thresholds,
    prediction: stats.ColumnDrift | None = None,
    quality: tuple[Quality | None, Quality | None] | None = None,
) -> Decision:
    """Apply the rule to a `feature_drift` table and optional prediction/quality evidence.

    Args:
        table: output of `feature_drift`.
        thresholds: the rule's knobs.
        prediction: drift statistics of the model's scores (reference vs current), if scored.
        quality: (reference quality, current quality), if labels are known.

    Returns:
        The verdict with its reasons.
    """
    share = float((table["weight"] * table["drifted"]).sum() / max(table["weight"].sum(), 1e-12))
    reasons = []
    data_drift = share >= thresholds.share_threshold
    if data_drift:
        top = table[table["drifted"]].sort_values("weight", ascending=False)["column"]
        reasons.append(
            f"weighted share of drifted features {share:.3f} >= {thresholds.share_threshold} "
            f"({', '.join(top)})"
        )
    pred_drift = pred_info = None
    if prediction is not None:
        pred_drift = (
            prediction.psi >= thresholds.prediction_psi_threshold
            and prediction.p_value < thresholds.alpha
        )
        pred_info = {"psi": prediction.psi, "p_value": prediction.p_value}
        if pred_drift:
            reasons.append(
                f"prediction PSI {prediction.psi:.3f} >= {thresholds.prediction_psi_threshold}"
            )
    quality_drop = quality_info = None
    if quality is not None and quality[0] is not None and quality[1] is not None:
        ref_q, cur_q = quality
        auc_fall, ece_rise = ref_q.auc - cur_q.auc, cur_q.ece - ref_q.ece
        quality_drop = auc_fall >= thresholds.auc_drop or ece_rise >= thresholds.calibration_rise
        quality_info = {
            "reference": asdict(ref_q),
            "current": asdict(cur_q),
            "auc_drop": auc_fall,
            "ece_rise": ece_rise,
        }
        if quality_drop:
            reasons.append(f"quality drop: AUC −{auc_fall:.3f}, calibration error +{ece_rise:.3f}")
    return Decision(
        drift=bool(data_drift or pred_drift or quality_drop),
        share=share,
        data_drift=bool(data_drift),
        prediction_drift=pred_drift,
        quality_drop=quality_drop,
        reasons=reasons,
        features=table.to_dict("records"),
        prediction=pred_info,
        quality=quality_info,
    )


def detect_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    thresholds: Thresholds,
    importance: Mapping[str, float] | None = None,
    predictions: tuple[np.ndarray, np.ndarray] | None = None,
    labels: tuple[np.ndarray | None, np.ndarray | None] | None = None,
) -> Decision:
    """Statistics and verdict for a (reference, current) pair of feature windows.

    Args:
        reference: the window the model learned from.
        current: the window to check.
        thresholds: the rule's knobs (`Thresholds.from_params(settings.params.drift)`).
        importance: feature → importance (the champion's, or `univariate_importance`).
        predictions: (reference scores, current scores), aligned with the frames' rows.
        labels: (reference labels, current labels) aligned with the frames; either may be None.

    Returns:
        The `Decision` (NumPy only, no Evidently: a 1M-row window takes a few seconds).
    """
    table = feature_drift(reference, current, thresholds, importance)
    pred = quality = None
    if predictions is not None:
        ref_p, cur_p = (pd.Series(np.asarray(p, float), name="prediction") for p in predictions)
        pred = stats.column_drift(ref_p, cur_p, "numeric", thresholds.bins)
        if labels is not None:
            quality = (
                model_quality(labels[0], ref_p.to_numpy()) if labels[0] is not None else None,
                model_quality(labels[1], cur_p.to_numpy()) if labels[1] is not None else None,
            )
    return decide(table, thresholds, pred, quality)
