"""The fitted offer policy as a small JSON artifact: what the registry stores and the service loads.

`inference.offers.OfferPolicy` holds one sklearn pipeline per offer type (median impute → signed
log → standardise the numerics, one-hot the categoricals, L2 logistic regression) and the
retention-effect table. `export_offer_policy` writes exactly those numbers — medians, means,
scales, categories, coefficients, intercepts, constant acceptance rates for types without enough
history, the effect estimates and the CLV horizon — to `offer_policy.json`; no pickle, so loading
runs no code and needs neither sklearn nor the training data. `load_offer_policy(dir)` (the
registry's loader for `paycycle-offers`) rebuilds a `RegisteredOfferPolicy`
whose P(accept) is the same linear model evaluated with NumPy (the tests check it matches the
sklearn pipelines), so `decide`/`evaluate` are `OfferPolicy`'s own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import schema
from inference.offers import OFFER_TYPES, OfferPolicy
from paycycle.errors import DataError

POLICY_FILE = "offer_policy.json"
FORMAT_VERSION = 1
NUMERIC = (*schema.NUMERIC, "abs_plan_fit")
CATEGORICAL = tuple(schema.CATEGORICAL)


@dataclass(frozen=True)
class LinearAccept:
    """One offer type's P(accept): the logistic regression over the pipeline's own transform."""

    median: np.ndarray
    mean: np.ndarray
    scale: np.ndarray
    categories: tuple[tuple[str, ...], ...]
    coef: np.ndarray
    intercept: float

    def logit(self, numeric: np.ndarray, categorical: np.ndarray) -> np.ndarray:
        x = np.where(np.isnan(numeric), self.median, numeric)
        x = (np.sign(x) * np.log1p(np.abs(x)) - self.mean) / self.scale
        k = len(self.mean)
        z = x @ self.coef[:k] + self.intercept
        start = k
        for j, cats in enumerate(self.categories):
            w = self.coef[start : start + len(cats)]
            hit = categorical[:, j][:, None] == np.asarray(cats, dtype=object)[None, :]
            z = z + hit.astype(float) @ w  # an unknown value is all zeros, as in the encoder
            start += len(cats)
        return z

    def to_dict(self) -> dict[str, Any]:
        return {
            "median": self.median.tolist(),
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "categories": [list(c) for c in self.categories],
            "coef": self.coef.tolist(),
            "intercept": self.intercept,
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> LinearAccept:
        out = cls(
            np.asarray(raw["median"], float),
            np.asarray(raw["mean"], float),
            np.asarray(raw["scale"], float),
            tuple(tuple(c) for c in raw["categories"]),
            np.asarray(raw["coef"], float),
            float(raw["intercept"]),
        )
        width = len(NUMERIC) + sum(len(c) for c in out.categories)
        if len(out.median) != len(NUMERIC) or len(out.coef) != width:
            raise DataError(f"{POLICY_FILE}: coefficients do not match the feature contract")
        return out

    @classmethod
    def from_pipeline(cls, pipeline: Any) -> LinearAccept:
        """Read the numbers out of `training.offers.learning._pipeline`'s fitted pipeline."""
        prep, logistic = pipeline.steps[0][1], pipeline.steps[-1][1]
        numeric = prep.named_transformers_["num"]
        imputer, scaler = numeric.steps[0][1], numeric.steps[-1][1]
        onehot = prep.named_transformers_["cat"]
        return cls(
            np.asarray(imputer.statistics_, float),
            np.asarray(scaler.mean_, float),
            np.asarray(scaler.scale_, float),
            tuple(tuple(str(v) for v in c) for c in onehot.categories_),
            np.asarray(logistic.coef_[0], float),
            float(logistic.intercept_[0]),
        )


def _model_arrays(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """`(n, k)` numerics (with `abs_plan_fit`) and `(n, m)` categoricals of a feature frame."""
    numeric = frame[list(schema.NUMERIC)].to_numpy(float)
    numeric = np.column_stack([numeric, np.abs(frame["plan_fit"].to_numpy(float))])
    return numeric, frame[list(CATEGORICAL)].to_numpy(object)


class LinearAcceptModel:
    """`AcceptModel.predict` without sklearn: a `LinearAccept` or a constant rate per type."""

    def __init__(self, models: Mapping[str, LinearAccept], rates: Mapping[str, float]) -> None:
        self.models = dict(models)
        self.rates = dict(rates)

    @classmethod
    def from_accept_model(cls, accept: Any) -> LinearAcceptModel:
        """From a fitted `training.offers.learning.AcceptModel` (its sklearn pipelines)."""
        return cls(
            {o: LinearAccept.from_pipeline(m) for o, m in accept.models.items()}, accept.rates
        )

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """`(n, 5)` acceptance probabilities in `OFFER_TYPES` order."""
        numeric, categorical = _model_arrays(frame)
        out = np.empty((len(frame), len(OFFER_TYPES)))
        for j, o in enumerate(OFFER_TYPES):
            model = self.models.get(o)
            if model is None:
                out[:, j] = self.rates[o]
            else:
                out[:, j] = 1.0 / (1.0 + np.exp(-model.logit(numeric, categorical)))
        return out


class RegisteredOfferPolicy(OfferPolicy):
    """An `OfferPolicy` loaded from the registry; calling it gives `(n, 5)` P(accept).

    The call is the registry's generic scorer contract (`scorer(data) -> array`, also what the
    MLflow pyfunc returns); decisions come from `decide(frame, p_churn, budget)`.
    """

    meta: dict[str, Any]

    def __call__(self, data: pd.DataFrame | Sequence[Mapping[str, Any]]) -> np.ndarray:
        return self.accept.predict(schema.to_frame(data, strict=False))


def load_offer_policy(path: Path) -> RegisteredOfferPolicy:
    """Read an exported policy (the registry's loader for `paycycle-offers`).

    Raises:
        DataError: the directory holds no policy, or one written for other features.
    """
    file = Path(path) / POLICY_FILE
    if not file.exists():
        raise DataError(f"{file}: not an exported offer policy")
    raw = json.loads(file.read_text())
    if raw.get("format") != FORMAT_VERSION or tuple(raw["offer_types"]) != OFFER_TYPES:
        raise DataError(f"{file}: written for other offer types or another format")
    if tuple(raw["numeric"]) != NUMERIC or tuple(raw["categorical"]) != CATEGORICAL:
        raise DataError(f"{file}: written for another feature contract")
    accept = LinearAcceptModel(
        {o: LinearAccept.from_dict(m) for o, m in raw["accept"].items()}, raw["accept_rates"]
    )
    effects = pd.DataFrame.from_dict(raw["effects"], orient="index").astype(float)
    effects = effects.reindex(list(OFFER_TYPES))
    effects.index.name = "offer_type"
    policy = RegisteredOfferPolicy(
        accept, effects, int(raw["horizon_months"]), int(raw["effect_months"])
    )
    policy.meta = dict(raw.get("meta", {}))
    return policy
