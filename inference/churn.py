"""The churn model at inference: its feature contract, raw columns → inputs, and the loader.

`training/churn/model.py` exports a TensorFlow SavedModel whose `serving_default` signature is
fixed (one `(None, 1)` tensor per feature) plus `feature_spec.json`; `load_scorer(dir)` returns
`score(data) -> np.ndarray` of probabilities, where `data` is a DataFrame or a mapping of
column → array. It calls the SavedModel's compiled concrete function directly (no
`model.predict`, no retracing), needs only TensorFlow (not the training code) and fills absent
columns with the `features.schema` defaults. `inference.compiled.compile_scorer` packs that
signature into a two-tensor graph for the service and batch scoring, or uses the export's NumPy
forward pass (`score.forward`, read here at load, as a registry download is deleted after it,
and kept only if it agrees with the signature: `inference.numpy_forward.checked_forward`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import schema
from paycycle.errors import DataError

SPEC_FILE = "feature_spec.json"
Scorer = Callable[[Any], np.ndarray]


@dataclass(frozen=True)
class FeatureSpec:
    """Which raw columns the model takes and how it treats them."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    vocabulary: dict[str, tuple[str, ...]]
    log_features: tuple[str, ...] = ()
    defaults: dict[str, float | str] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> FeatureSpec:
        raw = json.loads(text)
        raw["vocabulary"] = {k: tuple(v) for k, v in raw["vocabulary"].items()}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})


def default_spec() -> FeatureSpec:
    """The `features.schema` contract; counts and unbounded amounts also enter as log1p."""
    heavy = tuple(
        f.name
        for f in schema.FEATURES
        if f.kind == "numeric" and f.low is not None and f.low >= 0 and (f.high or 1e9) >= 100
    )
    return FeatureSpec(
        numeric=tuple(schema.NUMERIC),
        categorical=tuple(schema.CATEGORICAL),
        vocabulary=dict(schema.VOCABULARY),
        log_features=heavy,
        defaults={f.name: f.default for f in schema.FEATURES},
    )


def to_inputs(data: pd.DataFrame | Mapping[str, Any], spec: FeatureSpec) -> dict[str, np.ndarray]:
    """Raw columns → the model's named `(n, 1)` inputs; absent columns take the spec defaults."""
    cols = data if isinstance(data, Mapping) else {c: data[c].to_numpy() for c in data.columns}
    n = len(next(iter(cols.values()))) if cols else 0
    out: dict[str, np.ndarray] = {}
    for name in spec.numeric:
        v = cols.get(name)
        if v is None:
            v = np.full(n, float(spec.defaults.get(name, np.nan)))
        out[name] = np.asarray(v, dtype=np.float32).reshape(-1, 1)
    for name in spec.categorical:
        v = cols.get(name)
        if v is None:
            v = np.full(n, str(spec.defaults.get(name, "")), dtype=object)
        out[name] = np.asarray(v).astype(str).reshape(-1, 1)
    return out


def load_export(path: Path, spec_file: str, spec_type: Any, what: str) -> tuple[Any, Any]:
    """(spec, SavedModel) of an exported model directory: its JSON spec and the loaded graph.

    Raises:
        DataError: the directory holds no such spec (not `what`).
    """
    import tensorflow as tf

    spec_path = Path(path) / spec_file
    if not spec_path.exists():
        raise DataError(f"{spec_path}: not {what} ({spec_file} missing)")
    return spec_type.from_json(spec_path.read_text()), tf.saved_model.load(str(path))


def load_scorer(path: Path) -> Scorer:
    """A compiled batch scorer over an exported SavedModel.

    Args:
        path: a directory written by `export_churn`.

    Returns:
        `score(data) -> np.ndarray` (float64 probabilities, one per row); `data` is a DataFrame
        or a mapping column → array. Absent feature columns take the schema defaults.
    """
    import tensorflow as tf

    from inference.numpy_forward import checked_forward

    spec, loaded = load_export(path, SPEC_FILE, FeatureSpec, "an exported churn model")
    serve = loaded.signatures["serving_default"]

    def score(data: pd.DataFrame | Mapping[str, Any]) -> np.ndarray:
        inputs = to_inputs(data, spec)
        out = serve(**{k: tf.constant(v) for k, v in inputs.items()})
        return next(iter(out.values())).numpy().reshape(-1).astype(np.float64)

    score.spec = spec  # type: ignore[attr-defined]
    score.forward = checked_forward(path, spec, score)  # type: ignore[attr-defined]
    score.saved_model = loaded  # type: ignore[attr-defined]  # keep the graph alive
    return score
