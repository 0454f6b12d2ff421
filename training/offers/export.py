"""Write a fitted offer policy as the JSON artifact `inference.offer_artifact` loads (no pickle)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from inference.offer_artifact import (
    CATEGORICAL,
    FORMAT_VERSION,
    NUMERIC,
    POLICY_FILE,
    LinearAcceptModel,
)
from inference.offers import OFFER_TYPES, OfferPolicy
from training.offers.learning import AcceptModel


def _finite_or_none(value: Any) -> float | None:
    value = float(value)
    return value if np.isfinite(value) else None


def export_offer_policy(
    policy: OfferPolicy, path: Path, meta: Mapping[str, Any] | None = None
) -> Path:
    """Write `policy` as `<path>/offer_policy.json` (see the module docstring).

    Args:
        policy: a fitted policy (`inference.offers.fit_offer_policy`) or a loaded one.
        path: directory to create.
        meta: provenance kept with the numbers (fit date, rows, data hash).

    Returns:
        `path`.
    """
    accept = policy.accept
    if isinstance(accept, AcceptModel):
        accept = LinearAcceptModel.from_accept_model(accept)
    effects = policy.effects.reindex(list(OFFER_TYPES))
    raw = {
        "format": FORMAT_VERSION,
        "offer_types": list(OFFER_TYPES),
        "numeric": list(NUMERIC),
        "categorical": list(CATEGORICAL),
        "accept": {o: m.to_dict() for o, m in accept.models.items()},
        "accept_rates": {o: float(accept.rates[o]) for o in OFFER_TYPES},
        "effects": {
            o: {k: _finite_or_none(v) for k, v in row.items()}
            for o, row in effects.to_dict(orient="index").items()
        },
        "horizon_months": policy.horizon_months,
        "effect_months": policy.effect_months,
        "meta": dict(meta or getattr(policy, "meta", {}) or {}),
    }
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    (path / POLICY_FILE).write_text(json.dumps(raw, indent=1))
    return path
