"""Churn evaluation: discrimination, calibration and lift, relative to the simulator's oracle.

`evaluate_churn(y, p, oracle_p)` returns plain floats (ROC AUC, PR AUC, Brier, ECE, lift at the
top decile, and with the oracle's true probabilities on the same rows: `oracle_auc`,
`oracle_brier`, `oracle_auc_ratio`). `save_plots` writes calibration, ROC and lift PNGs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from paycycle.errors import DataError


def calibration_table(
    y: np.ndarray, p: np.ndarray, bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Quantile-binned calibration: (mean predicted, observed rate, rows) per bin."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bins + 1)))
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, max(len(edges) - 2, 0))
    counts = np.bincount(idx, minlength=len(edges) - 1).astype(float)
    keep = counts > 0
    pred = np.bincount(idx, weights=p, minlength=len(counts))[keep] / counts[keep]
    obs = np.bincount(idx, weights=y, minlength=len(counts))[keep] / counts[keep]
    return pred, obs, counts[keep]


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Row-weighted mean |predicted − observed| over quantile bins."""
    pred, obs, counts = calibration_table(y, p, bins)
    return float(np.sum(counts * np.abs(pred - obs)) / np.sum(counts))


def lift_at(y: np.ndarray, p: np.ndarray, fraction: float = 0.1) -> float:
    """Churn rate among the top `fraction` by score ÷ the overall churn rate."""
    y, p = np.asarray(y, float), np.asarray(p, float)
    k = max(1, int(round(len(y) * fraction)))
    top = np.argsort(-p, kind="stable")[:k]
    return float(y[top].mean() / y.mean())


def evaluate_churn(
    y: np.ndarray, p: np.ndarray, oracle_p: np.ndarray | None = None
) -> dict[str, float]:
    """Holdout metrics of predicted probabilities `p` against labels `y`.

    Args:
        y: 0/1 outcomes.
        p: predicted churn probabilities.
        oracle_p: the simulator's true probabilities for the same rows (rows where it is NaN
            are dropped from the oracle figures only).

    Returns:
        auc, pr_auc, brier, ece, lift_top_decile, base_rate, rows; with the oracle also
        oracle_auc, oracle_brier, oracle_pr_auc, oracle_auc_ratio, oracle_lift_top_decile.

    Raises:
        DataError: when lengths differ or only one class is present.
    """
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    y, p = np.asarray(y, float).reshape(-1), np.asarray(p, float).reshape(-1)
    if len(y) != len(p):
        raise DataError(f"predictions: expected {len(y)} values, got {len(p)}")
    if y.min() == y.max():
        raise DataError("holdout: needs both churned and retained customers to evaluate")
    out = {
        "auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "ece": expected_calibration_error(y, p),
        "lift_top_decile": lift_at(y, p, 0.1),
        "base_rate": float(y.mean()),
        "mean_prediction": float(p.mean()),
        "rows": float(len(y)),
    }
    if oracle_p is not None:
        o = np.asarray(oracle_p, float).reshape(-1)
        ok = np.isfinite(o)
        if ok.sum() and y[ok].min() != y[ok].max():
            out["oracle_auc"] = float(roc_auc_score(y[ok], o[ok]))
            out["oracle_pr_auc"] = float(average_precision_score(y[ok], o[ok]))
            out["oracle_brier"] = float(brier_score_loss(y[ok], o[ok]))
            out["oracle_lift_top_decile"] = lift_at(y[ok], o[ok], 0.1)
            out["oracle_auc_ratio"] = float(roc_auc_score(y[ok], p[ok])) / out["oracle_auc"]
    return out


def save_plots(
    y: np.ndarray, p: np.ndarray, out_dir: Path, oracle_p: np.ndarray | None = None
) -> list[Path]:
    """Calibration, ROC and cumulative-gain/lift PNGs (oracle drawn alongside when given)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    y, p = np.asarray(y, float), np.asarray(p, float)
    series = [("model", p)]
    if oracle_p is not None and np.isfinite(oracle_p).all():
        series.append(("oracle", np.asarray(oracle_p, float)))
    paths = []

    fig, ax = plt.subplots(figsize=(5, 5))
    top = 0.0
    for label, s in series:
        pred, obs, _ = calibration_table(y, s, 10)
        ax.plot(pred, obs, marker="o", label=label)
        top = max(top, pred.max(), obs.max())
    ax.plot([0, top], [0, top], "k--", lw=1, label="perfect")
    ax.set(xlabel="mean predicted", ylabel="observed churn rate", title="Calibration (deciles)")
    ax.legend()
    paths.append(_save(fig, out_dir / "calibration.png"))

    fig, ax = plt.subplots(figsize=(5, 5))
    for label, s in series:
        fpr, tpr, _ = roc_curve(y, s)
        ax.plot(fpr, tpr, label=label)
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC")
    ax.legend()
    paths.append(_save(fig, out_dir / "roc.png"))

    fig, ax = plt.subplots(figsize=(5, 5))
    fractions = np.linspace(0.05, 1, 20)
    for label, s in series:
        ax.plot(fractions, [lift_at(y, s, f) for f in fractions], marker=".", label=label)
    ax.axhline(1, color="k", ls="--", lw=1)
    ax.set(xlabel="share of customers contacted (by score)", ylabel="lift", title="Lift")
    ax.legend()
    paths.append(_save(fig, out_dir / "lift.png"))
    return paths


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
