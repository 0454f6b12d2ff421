"""The recommender at inference: its input contract, validation, and the compiled scorer.

`training/recommender/model.py` exports a SavedModel (fixed `serving_default` signature, one
`(None, 1)` tensor per feature plus the `(None, 7)` action mask) and `rec_spec.json`;
`load_recommender(dir)` returns a `Recommender` whose calls go straight to that compiled
signature (no `model.predict`). Raw records are validated and completed by `prepare_inputs`
(unknown plan ids, unknown add-ons or negative usage raise `DataError` naming the field); the
service builds the same columns from already-validated requests with NumPy
(`inference.profiles.recommender_frame`, checked column by column against `prepare_inputs`).
Actions (five add-ons, `upgrade`, `downgrade`) map back to the catalog's nine items through the
plan in force; owned add-ons, the current plan and plan moves usage does not call for are never
ranked.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import recommender as rd
from features import schema
from inference.churn import FeatureSpec, default_spec, load_export, to_inputs
from paycycle.errors import DataError

SPEC_FILE = "rec_spec.json"
MASK = "mask"
DERIVED = ("log_usage_ratio", "log_hist_usage_ratio")


@dataclass(frozen=True)
class RecSpec:
    """Inputs of the exported model and the rules the scorer applies around it."""

    features: FeatureSpec
    upgrade_min_usage: float
    downgrade_max_usage: float
    window_days: int
    actions: tuple[str, ...] = rd.ACTIONS
    items: tuple[str, ...] = rd.ITEMS

    def to_json(self) -> str:
        raw = asdict(self)
        raw["features"] = json.loads(self.features.to_json())
        return json.dumps(raw, indent=2)

    @classmethod
    def from_json(cls, text: str) -> RecSpec:
        raw = json.loads(text)
        raw["features"] = FeatureSpec.from_json(json.dumps(raw["features"]))
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def feature_spec() -> FeatureSpec:
    """The churn contract's columns plus the recommender's own (owned add-ons, usage history)."""
    base = default_spec()
    extra = (*rd.EXTRA_NUMERIC, *DERIVED)
    heavy = (*base.log_features, *rd.HIST_COLUMNS)
    return FeatureSpec(
        numeric=(*base.numeric, *extra),
        categorical=base.categorical,
        vocabulary=base.vocabulary,
        log_features=heavy,
        defaults={**base.defaults, **{c: 0.0 for c in rd.OWNED_COLUMNS}},
    )


def _column(df: pd.DataFrame, name: str) -> pd.Series | None:
    return df[name] if name in df.columns else None


def _first_bad(mask: np.ndarray, df: pd.DataFrame) -> Any:
    return df.index[np.flatnonzero(mask)[0]]


def _owned_from_list(values: pd.Series) -> np.ndarray:
    owned = np.zeros((len(values), len(rd.ADDONS)))
    for i, v in enumerate(values):
        names = [] if v is None or (isinstance(v, float) and math.isnan(v)) else v
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",") if n.strip()]
        for name in names:
            if name not in rd.ADDONS:
                raise DataError(
                    f"addons: unknown add-on {name!r} (record {values.index[i]}); expected one "
                    f"of {', '.join(rd.ADDONS)}"
                )
            owned[i, rd.ADDONS.index(name)] = 1.0
    return owned


def prepare_inputs(
    data: pd.DataFrame | Mapping[str, Any] | Sequence[Mapping[str, Any]], strict: bool = False
) -> pd.DataFrame:
    """Validate raw customer records and complete them to the recommender's columns.

    Args:
        data: a frame, a column mapping, or records. Besides the `features.schema` fields it
            reads `plan_id` (or `plan_tier`), `usage_units` (else `usage_ratio`, else
            `usage_pattern` taken as % of that plan), `addons` (names, list or comma string) or
            `owned_<addon>` flags, and optionally `hist_*` columns (default: last month's).
        strict: reject unknown category values instead of mapping them to the default.

    Returns:
        A frame with every column of `feature_spec()` (other columns kept).

    Raises:
        DataError: naming the field, e.g. an unknown `plan_id` or a negative `usage_units`.
    """
    if isinstance(data, pd.DataFrame):
        df = data.copy()
    elif isinstance(data, Mapping):
        df = pd.DataFrame({k: np.asarray(v).reshape(-1) for k, v in data.items()})
    else:
        df = pd.DataFrame(list(data))
    if df.empty:
        raise DataError("customers: expected at least one customer, got an empty list")
    plan_id = _column(df, "plan_id")
    if plan_id is not None:
        ids = pd.to_numeric(plan_id, errors="coerce")
        bad = ~ids.isin(rd.PLAN_IDS).to_numpy()
        if bad.any():
            raise DataError(
                f"plan_id: unknown plan {plan_id.to_numpy()[bad][0]!r} (record "
                f"{_first_bad(bad, df)}); expected one of {', '.join(map(str, rd.PLAN_IDS))}"
            )
        df["plan_tier"] = ids.map({p: i + 1 for i, p in enumerate(rd.PLAN_IDS)}).astype(float)
    elif "plan_tier" in df.columns:
        tier = pd.to_numeric(df["plan_tier"], errors="coerce")
        bad = ~tier.isin([1, 2, 3, 4]).to_numpy()
        if bad.any():
            raise DataError(
                f"plan_tier: unknown tier {df['plan_tier'].to_numpy()[bad][0]!r} (record "
                f"{_first_bad(bad, df)}); expected 1-4"
            )
    for name in ("usage_units", "usage_ratio", "hist_usage_ratio", "usage_pattern"):
        if name in df.columns:
            v = pd.to_numeric(df[name], errors="coerce")
            bad = (v < 0).to_numpy()
            if bad.any():
                raise DataError(
                    f"{name}: usage must be at least 0, got {v.to_numpy()[bad][0]:g} (record "
                    f"{_first_bad(bad, df)})"
                )
    if "usage_pattern" not in df.columns and "usage_units" in df.columns:
        df["usage_pattern"] = 0.0  # replaced below; the schema requires the field
    frame = schema.to_frame(df, strict=strict)
    tier = frame["plan_tier"].round().clip(1, 4).astype(int).to_numpy()
    included = rd.INCLUDED[tier - 1]
    if "usage_units" in frame.columns:
        units = pd.to_numeric(frame["usage_units"], errors="coerce").to_numpy(float)
        frame["usage_ratio"] = units / included
        frame["usage_pattern"] = 100 * frame["usage_ratio"]
    elif "usage_ratio" not in frame.columns:
        frame["usage_ratio"] = frame["usage_pattern"] / 100
    if "hist_usage_ratio" not in frame.columns:
        frame["hist_usage_ratio"] = frame["usage_ratio"]
    frame["hist_usage_ratio"] = frame["hist_usage_ratio"].fillna(frame["usage_ratio"])
    for hist, sig in zip(rd.HIST_COLUMNS, rd.SIGNALS, strict=True):
        frame[hist] = frame[hist].fillna(frame[sig]) if hist in frame else frame[sig]
    if "addons" in frame.columns:
        frame[list(rd.OWNED_COLUMNS)] = _owned_from_list(frame["addons"])
    for col in rd.OWNED_COLUMNS:
        frame[col] = frame[col].fillna(0.0).astype(float) if col in frame else 0.0
    frame["log_usage_ratio"] = np.log(np.clip(frame["usage_ratio"].to_numpy(float), 1e-3, None))
    frame["log_hist_usage_ratio"] = np.log(
        np.clip(frame["hist_usage_ratio"].to_numpy(float), 1e-3, None)
    )
    return frame


def structural_mask(frame: pd.DataFrame) -> np.ndarray:
    """`(n, 7)` float mask of actions that exist: add-ons not owned, a tier above / below."""
    owned = frame[list(rd.OWNED_COLUMNS)].to_numpy(float) > 0.5
    tier = frame["plan_tier"].round().to_numpy(int)
    return np.column_stack([~owned, tier < 4, tier > 1]).astype(np.float32)


def sensible_mask(frame: pd.DataFrame, spec: RecSpec) -> np.ndarray:
    """`structural_mask` with plan moves only where usage calls for them."""
    mask = structural_mask(frame)
    last = frame["usage_ratio"].to_numpy(float)
    hist = frame["hist_usage_ratio"].to_numpy(float)
    mask[:, rd.UP] *= np.maximum(last, hist) >= spec.upgrade_min_usage
    mask[:, rd.DOWN] *= np.maximum(last, hist) <= spec.downgrade_max_usage
    return mask


def action_to_items(action_scores: np.ndarray, tier: np.ndarray) -> np.ndarray:
    """`(n, 7)` action scores → `(n, 9)` item scores (NaN = not recommendable)."""
    n = len(action_scores)
    out = np.full((n, len(rd.ITEMS)), np.nan)
    out[:, : len(rd.ADDONS)] = action_scores[:, : len(rd.ADDONS)]
    rows = np.arange(n)
    base = len(rd.ADDONS) - 1  # plan item column for tier t is base + t
    up, down = tier < 4, tier > 1
    out[rows[up], base + tier[up] + 1] = action_scores[up, rd.UP]
    out[rows[down], base + tier[down] - 1] = action_scores[down, rd.DOWN]
    return out


def model_inputs(frame: pd.DataFrame, spec: FeatureSpec, mask: np.ndarray) -> dict[str, Any]:
    return {**to_inputs(frame, spec), MASK: mask.astype(np.float32)}


class Recommender:
    """Compiled scorer over an exported recommender: `scores(data)`, `rank(data, k)`.

    Calling it returns the `(n, 9)` item scores (`rec_data.ITEMS` order, NaN where an item is
    owned, the current plan or a plan move usage does not call for), which is what the registry's
    generic scorer contract and the MLflow pyfunc return.
    """

    def __init__(self, signature: Any, spec: RecSpec, keep_alive: Any = None) -> None:
        self._serve = signature
        self.rec_spec = spec
        self._keep_alive = keep_alive  # the loaded SavedModel owns the graph

    def action_scores(self, frame: pd.DataFrame, mask: np.ndarray) -> np.ndarray:
        """P(action | adoption) from the compiled signature, `(n, 7)`."""
        import tensorflow as tf

        inputs = model_inputs(frame, self.rec_spec.features, mask)
        out = self._serve(**{k: tf.constant(v) for k, v in inputs.items()})
        return next(iter(out.values())).numpy().astype(np.float64)

    def scores(self, data: Any, sensible: bool = True, prepared: bool = False) -> np.ndarray:
        """Item scores `(n, 9)`; `sensible=False` keeps every structurally possible plan move.

        `prepared=True` takes a frame that already holds every `prepare_inputs` column (the
        service builds one from validated requests, `inference.profiles.recommender_frame`) and
        skips that pandas validation, which costs ~10 ms per call whatever the rows.
        """
        frame = data if prepared else prepare_inputs(data)
        model_mask = structural_mask(frame)
        p = self.action_scores(frame, model_mask)
        if sensible:
            p = np.where(sensible_mask(frame, self.rec_spec) > 0, p, np.nan)
        tier = frame["plan_tier"].round().to_numpy(int)
        return action_to_items(np.where(model_mask > 0, p, np.nan), tier)

    __call__ = scores

    def rank(self, data: Any, k: int = 3) -> list[list[dict[str, Any]]]:
        """Top-`k` items per customer: `{"item", "kind", "score"}`, best first."""
        return rank_items(self.scores(data), k)


def rank_items(scores: np.ndarray, k: int) -> list[list[dict[str, Any]]]:
    """Top-`k` recommendable items per row of an `(n, 9)` score matrix."""
    order = np.argsort(-np.nan_to_num(scores, nan=-np.inf), axis=1, kind="stable")[:, :k]
    out = []
    for row, idx in zip(scores, order, strict=True):
        items = []
        for j in idx:
            if np.isfinite(row[j]):
                item = rd.ITEMS[j]
                items.append(
                    {"item": item, "kind": item.split(":")[0], "score": round(float(row[j]), 6)}
                )
        out.append(items)
    return out


def load_recommender(path: Path) -> Recommender:
    """Load an exported recommender as a compiled scorer (the registry's loader for it)."""
    spec, loaded = load_export(path, SPEC_FILE, RecSpec, "an exported recommender")
    return Recommender(loaded.signatures["serving_default"], spec, loaded)
