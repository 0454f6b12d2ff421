"""Realized performance once a month's outcomes are known, beside the label-free estimate.

A *prediction window* is every churn prediction made for one month (`as_of` = the month's first
day): batch scores from the `scores` table and served predictions from the request log, as a
frame with `customer_id`, `churn_probability`, `model_version` and `churned` (1/0 once the
30-day horizon has passed, NaN before; `monitoring.outcomes` builds it). Per model version:

* realized: ROC AUC, PR AUC (average precision), Brier score, lift in the top decile (positive
  rate of the 10% highest scores ÷ the overall rate) and an equal-count calibration table;
* estimated: CBPE (`monitoring.cbpe`) with the isotonic calibration fitted on the *prior*
  window's realized outcomes (the last month whose labels were known when this one was scored);
* decision: `monitoring.decision.performance_drop`, the realized window against the prior one.

`summarise` returns the `performance.json` document (keys fixed: the report index and the other
monitoring views read them); `write_performance` puts it next to the window's drift report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from monitoring.cbpe import estimate_performance, fit_calibrator, observed_error, widen
from monitoring.decision import Thresholds, performance_drop
from monitoring.drift import PERFORMANCE_SUFFIX as SUFFIX

PREDICTION = "churn_probability"
VERSION = "model_version"
LABEL = "churned"


def calibration_table(labels: np.ndarray, scores: np.ndarray, bins: int = 10) -> list[list[Any]]:
    """Equal-count score bins: `[bin_lo, bin_hi, mean_pred, observed_rate, n]` each."""
    order = np.argsort(scores, kind="stable")
    rows = []
    for chunk in np.array_split(order, min(bins, max(len(order), 1))):
        if chunk.size:
            s, y = scores[chunk], labels[chunk]
            rows.append(
                [float(s.min()), float(s.max()), float(s.mean()), float(y.mean()), chunk.size]
            )
    return rows


def lift_top_decile(labels: np.ndarray, scores: np.ndarray) -> float:
    """Positive rate among the 10% highest scores ÷ the overall positive rate."""
    k = max(int(np.ceil(0.1 * len(scores))), 1)
    top = np.argsort(-scores, kind="stable")[:k]
    rate = labels.mean()
    return float(labels[top].mean() / rate) if rate > 0 else float("nan")


def realized_metrics(
    labels: np.ndarray, scores: np.ndarray, bins: int = 10
) -> dict[str, Any] | None:
    """ROC AUC, PR AUC, Brier, top-decile lift and calibration; None without both classes."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    y, s = np.asarray(labels, float), np.asarray(scores, float)
    if y.size == 0 or len(np.unique(y)) < 2:
        return None
    return {
        "roc_auc": float(roc_auc_score(y, s)),
        "pr_auc": float(average_precision_score(y, s)),
        "brier": float(np.mean((s - y) ** 2)),
        "lift_top_decile": lift_top_decile(y, s),
        "calibration": calibration_table(y, s, bins),
    }


def version_performance(
    current: pd.DataFrame, prior: pd.DataFrame | None, bins: int = 10, seed: int = 0
) -> dict[str, Any]:
    """`rows`, `positives`, `realized` (None until labelled) and `estimated` of one version.

    Args:
        current: the version's predictions for the month (`PREDICTION`, `LABEL`).
        prior: its predictions for the previous month, labelled; calibrates the estimate (the
            scores are taken as calibrated when None or unlabelled), and the estimator's error
            on it widens the band (`monitoring.cbpe.widen`).
        bins: calibration-table bins.
        seed: seed of the estimate's band.
    """
    scores = current[PREDICTION].to_numpy(float)
    labels = current[LABEL].to_numpy(float) if LABEL in current else np.full(len(current), np.nan)
    known = np.isfinite(labels)
    calibrated, errors = None, (0.0, 0.0)
    if prior is not None and LABEL in prior and prior[LABEL].notna().any():
        prior_scores, prior_labels = prior[PREDICTION].to_numpy(float), prior[LABEL].to_numpy()
        calibrate = fit_calibrator(prior_scores, prior_labels)
        calibrated = calibrate(scores)
        errors = observed_error(prior_scores, prior_labels, calibrate)
    realized = realized_metrics(labels[known], scores[known], bins) if known.all() else None
    estimate = widen(estimate_performance(scores, calibrated, seed=seed), *errors)
    return {
        "rows": len(current),
        "positives": int(labels[known].sum()) if known.all() else None,
        "realized": realized,
        "estimated": estimate.to_dict(),
    }


def _by_version(frame: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    if frame is None or frame.empty:
        return {}
    return {str(v): g for v, g in frame.groupby(frame[VERSION].astype(str), sort=True)}


def summarise(
    current: pd.DataFrame,
    as_of: pd.Timestamp,
    thresholds: Thresholds,
    prior: pd.DataFrame | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """The `performance.json` document of one prediction window.

    Args:
        current: the month's predictions (`customer_id`, `PREDICTION`, `VERSION`, `LABEL`).
        as_of: the first day of the month they were made for.
        thresholds: the drift section's knobs (`performance_auc_drop`, `performance_brier_rise`).
        prior: the previous month's labelled predictions (calibration and the rule's reference).
        seed: seed of the estimates' bands.

    Returns:
        `window`, `as_of`, `model_versions` {version: rows/positives/realized/estimated} and
        `decision` {`realized_drift`, `reasons`}: drift when a version's realized AUC fell or
        Brier rose past the thresholds against its own prior window.
    """
    as_of = pd.Timestamp(as_of)
    priors = _by_version(prior)
    versions, reasons = {}, []
    for version, group in _by_version(current).items():
        before = priors.get(version)
        perf = version_performance(group, before, thresholds.bins, seed)
        versions[version] = perf
        reference = None
        if before is not None and before[LABEL].notna().all():
            labels, scores = before[LABEL].to_numpy(float), before[PREDICTION].to_numpy(float)
            reference = realized_metrics(labels, scores, thresholds.bins)
        fired, why = performance_drop(reference, perf["realized"], thresholds)
        reasons += [f"model version {version}: {w}" for w in why] if fired else []
    return {
        "window": f"{as_of:%Y-%m}",
        "as_of": f"{as_of:%Y-%m-%d}",
        "model_versions": versions,
        "decision": {"realized_drift": bool(reasons), "reasons": reasons},
    }


def performance_path(report_json: Path) -> Path:
    """`<reports>/drift/<date>/<name>.performance.json` for the report `<name>.json`."""
    return report_json.with_name(report_json.stem + SUFFIX)


def write_performance(summary: dict[str, Any], report_json: Path) -> Path:
    """Write the summary beside its drift report; returns the path."""
    path = performance_path(report_json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_finite(summary), indent=2, allow_nan=False) + "\n")
    return path


def _finite(value: Any) -> Any:
    """NaN/inf (an undefined metric) become null, so the file is strict JSON."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def flat_metrics(summary: dict[str, Any]) -> dict[str, float]:
    """`perf_v<version>_<realized|estimated>_<metric>` numbers, for MLflow."""
    out = {}
    for version, perf in summary["model_versions"].items():
        for kind in ("realized", "estimated"):
            for key, value in (perf.get(kind) or {}).items():
                if isinstance(value, float) and np.isfinite(value):
                    out[f"perf_v{version}_{kind}_{key}"] = value
    out["perf_realized_drift"] = float(summary["decision"]["realized_drift"])
    return out
