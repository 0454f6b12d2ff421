"""The linear baseline every churn model is measured against.

A plain logistic regression on all the model's features (numeric: median-imputed and
standardised; categorical: one-hot), fitted on the same training rows as the Keras model and
scored on the same holdout. On our simulator it reaches the Keras model's ROC AUC within about
0.001, so the network has to earn its keep: the training run logs the baseline beside the model
with `baseline_auc` and `auc_minus_baseline`, and promotion (`promotion.require_beat_baseline`)
either refuses a candidate that does not beat it or records that it does not.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from inference.churn import FeatureSpec, default_spec
from paycycle.errors import DataError
from training.churn.model import LABEL

BASELINE_NAME = "logistic-regression baseline"
BASELINE_ARTIFACT = "baseline"
TIE = 0.001  # |AUC difference| below this is "no better than the baseline"


def fit_baseline(train: pd.DataFrame, spec: FeatureSpec | None = None, seed: int = 0):
    """StandardScaler + LogisticRegression on every feature of `spec`; a fitted sklearn Pipeline.

    Raises:
        DataError: a feature column or the label is missing, or the label has one class.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    spec = spec or default_spec()
    missing = [c for c in [*spec.columns, LABEL] if c not in train.columns]
    if missing:
        raise DataError(f"{', '.join(missing)}: missing from the baseline's training frame")
    y = train[LABEL].to_numpy()
    if len(np.unique(y)) < 2:
        raise DataError(f"{LABEL}: the baseline needs both classes in the training rows")
    parts = []
    if spec.numeric:
        numeric = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
        parts.append(("numeric", numeric, list(spec.numeric)))
    if spec.categorical:
        onehot = OneHotEncoder(handle_unknown="ignore")
        parts.append(("categorical", onehot, list(spec.categorical)))
    model = make_pipeline(
        ColumnTransformer(parts),
        LogisticRegression(max_iter=2000, random_state=seed),
    )
    model.fit(baseline_frame(train, spec), y)
    return model


def baseline_spec(frame: pd.DataFrame, model_spec: FeatureSpec | None = None) -> FeatureSpec:
    """All features: the feature contract when `frame` carries it, else the model's own spec
    (a user's CSV, whose columns the contract does not name)."""
    contract = default_spec()
    if model_spec is None or set(contract.columns) <= set(frame.columns):
        return contract
    return model_spec


def baseline_frame(data: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The spec's columns with the types the baseline was fitted on (categoricals as text)."""
    frame = data[list(spec.columns)].copy()
    for name in spec.categorical:
        frame[name] = frame[name].astype(str)
    for name in spec.numeric:
        frame[name] = frame[name].astype(float)
    return frame


def baseline_scorer(model, spec: FeatureSpec | None = None):
    """`score(frame) -> P(churn)` over a fitted baseline, the same call shape as a scorer."""
    spec = spec or default_spec()

    def score(data: pd.DataFrame) -> np.ndarray:
        return model.predict_proba(baseline_frame(data, spec))[:, 1].astype(float)

    return score


def compare_to_baseline(
    metrics: Mapping[str, float], baseline: Mapping[str, float], metric: str = "auc"
) -> dict[str, float]:
    """`baseline_<metric>` and `<metric>_minus_baseline` for a model's holdout metrics."""
    return {
        f"baseline_{metric}": float(baseline[metric]),
        f"{metric}_minus_baseline": float(metrics[metric]) - float(baseline[metric]),
    }


def baseline_verdict(metrics: Mapping[str, float], baseline: Mapping[str, float]) -> str:
    """One sentence for the run: does the model beat the linear baseline's AUC, and by how much."""
    gap = float(metrics["auc"]) - float(baseline["auc"])
    figures = f"AUC {metrics['auc']:.4f} vs {BASELINE_NAME} {baseline['auc']:.4f}"
    if gap >= TIE:
        return f"beats the {BASELINE_NAME} by {gap:.4f} ({figures})"
    if gap > -TIE:
        return f"within {TIE:g} AUC of the {BASELINE_NAME}, no better than it ({figures})"
    return f"loses to the {BASELINE_NAME} by {-gap:.4f} ({figures})"
