"""The churn MLP's forward pass in plain NumPy, from arrays written beside the SavedModel.

The compiled TensorFlow call costs ~1.2 ms per batch however small, more than the whole HTTP
request around it; the model is a few small matrix products, tens of microseconds in NumPy.
`export_churn` writes `forward.npz` (`FORWARD_FILE`): everything the Keras graph does at
inference, taken from its layers by name (`training.churn.forward.forward_arrays`):

- `fill`, `log_mask`: NaN → training median, then `sign(x)·log1p(|x|)` columns appended for the
  heavy-tailed numerics (`NumericPrep`);
- `mean`, `variance`, `epsilon`: Keras 3 `Normalization`, `(x - mean) / max(sqrt(var), eps)`;
- `vocab.<name>`, `table.<name>`: per categorical its `StringLookup` vocabulary (index 0 is the
  out-of-vocabulary slot, value `i` of the vocabulary is index `i + 1`) and the matrix its index
  selects a row of (the `Embedding` weights, or the identity for one-hot);
- `kernel.<i>`, `bias.<i>`, `activations`: the dense layers in order (dropout is the identity
  at inference); the last one's bias already carries the prior correction.

The features enter the first dense layer concatenated as [numerics, categoricals in spec
order]; `NumpyForward` folds each categorical's table into that layer's kernel at load, so a
categorical costs one row gather. `checked_forward` loads it only if it agrees with the
SavedModel signature on `agreement_rows` (max |diff| <= `AGREEMENT_TOL`); otherwise, or if the
file is unreadable, it warns and the scorer keeps TensorFlow. `inference.compiled.compile_scorer`
then prefers it.
"""

from __future__ import annotations

import logging
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from features import schema
from features.columns import CATEGORICAL, NUMERIC, Columns, FeatureColumns, customers_to_columns
from paycycle.errors import DataError

FORWARD_FILE = "forward.npz"
AGREEMENT_TOL = 1e-5
log = logging.getLogger(__name__)
# float64: the graph computes in float32, and a float32 pass here came out no closer to it
DTYPE = np.float64

_ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "relu": lambda z: np.maximum(z, 0.0),
    "sigmoid": lambda z: np.exp(-np.logaddexp(0.0, -z)),  # no overflow for very negative z
    "linear": lambda z: z,
}


def save_forward(path: Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write the forward-pass arrays (no pickled objects: strings are unicode arrays)."""
    path = Path(path)
    with path.open("wb") as fh:
        np.savez(fh, **{k: np.asarray(v) for k, v in arrays.items()})
    return path


class NumpyForward:
    """`score(columns) -> probabilities` over the exported arrays, vectorised over the batch.

    Args:
        arrays: the contents of `forward.npz`.
        numeric, categorical: the spec's feature order (the model's input order).
        defaults: the value of a column absent from the request (`FeatureSpec.defaults`).

    Raises:
        DataError: the arrays do not describe a model with these features (missing key, wrong
            shape, unknown activation).
    """

    def __init__(
        self,
        arrays: Mapping[str, np.ndarray],
        numeric: tuple[str, ...],
        categorical: tuple[str, ...],
        defaults: Mapping[str, float | str],
    ) -> None:
        try:
            self._build(arrays, numeric, categorical, defaults)
        except (KeyError, ValueError, IndexError) as exc:
            raise DataError(f"{FORWARD_FILE}: not a churn forward pass ({exc})") from exc

    def _build(self, a, numeric, categorical, defaults) -> None:
        k = len(numeric)
        self.numeric, self.categorical = list(numeric), list(categorical)
        self.fill = np.asarray(a["fill"], DTYPE).reshape(k)
        self.log_idx = np.flatnonzero(np.asarray(a["log_mask"], bool).reshape(k))
        width = k + len(self.log_idx)
        mean = np.asarray(a["mean"], DTYPE).reshape(width)
        scale = np.maximum(np.sqrt(np.asarray(a["variance"], DTYPE)), float(a["epsilon"]))
        self.mean, self.scale = mean, scale.reshape(width)
        activations = [str(x) for x in a["activations"]]
        unknown = [x for x in activations if x not in _ACTIVATIONS]
        if unknown or not activations:
            raise ValueError(f"activations {activations}")
        self.layers = [
            (
                np.asarray(a[f"kernel.{i}"], DTYPE),
                np.asarray(a[f"bias.{i}"], DTYPE),
                _ACTIVATIONS[name],
            )
            for i, name in enumerate(activations)
        ]
        first = self.layers[0][0]
        # the normalisation folded into the first layer: ((x - mean) / scale) @ K + b
        self.kernel0 = first[:width] / self.scale[:, None]
        self.bias0 = self.layers[0][1] - (self.mean / self.scale) @ first[:width]
        # per categorical: value -> row of `self.tables` (its OOV row where absent), and its
        # table times its slice of the first kernel, stacked: all categoricals in one gather
        self.vocab: list[tuple[dict[str, int], int]] = []
        tables = [np.zeros((0, first.shape[1]), DTYPE)]
        row, offset = width, 0
        for name in categorical:
            vocab = [str(v) for v in a[f"vocab.{name}"]]
            table = np.asarray(a[f"table.{name}"], DTYPE)
            if table.ndim != 2 or table.shape[0] != len(vocab) + 1:
                raise ValueError(f"table.{name} shape {table.shape} for {len(vocab)} values")
            self.vocab.append(({v: offset + i + 1 for i, v in enumerate(vocab)}, offset))
            tables.append(table @ first[row : row + table.shape[1]])
            row, offset = row + table.shape[1], offset + table.shape[0]
        self.tables = np.concatenate(tables)
        if row != first.shape[0]:
            raise ValueError(f"first kernel has {first.shape[0]} rows, features give {row}")
        self.num_defaults = np.array([float(defaults.get(n, np.nan)) for n in numeric])
        self.cat_defaults = [str(defaults.get(n, "")) for n in categorical]
        # where each model feature sits in `FeatureColumns`' matrices (None: one is not there)
        self.num_index = _positions(numeric, NUMERIC)
        self.cat_index = _positions(categorical, CATEGORICAL)

    def __call__(self, cols: Mapping[str, Any]) -> np.ndarray:
        """Probabilities (float64, one per row) for request columns; absent columns take the
        defaults. Numerics are rounded to float32 first, as the SavedModel's inputs are."""
        n = len(next(iter(cols.values())))
        if isinstance(cols, FeatureColumns) and self.num_index is not None:
            x = cols.numeric[:, self.num_index].astype(np.float32)  # one gather, not k copies
        else:
            x = np.empty((n, len(self.numeric)), dtype=np.float32)
            for i, name in enumerate(self.numeric):
                x[:, i] = cols[name] if name in cols else self.num_defaults[i]
        x = np.where(np.isnan(x), self.fill, x)  # float64 from here
        if len(self.log_idx):
            heavy = x[:, self.log_idx]
            x = np.concatenate([x, np.sign(heavy) * np.log1p(np.abs(heavy))], axis=1)
        z = x @ self.kernel0 + self.bias0
        if self.categorical:
            if isinstance(cols, FeatureColumns) and self.cat_index is not None:
                values = cols.categorical[:, self.cat_index].T.tolist()
            else:
                values = [
                    cols[name] if name in cols else [default] * n
                    for name, default in zip(self.categorical, self.cat_defaults, strict=True)
                ]
            rows = [
                [vocab.get(str(v), oov) for v in column]
                for column, (vocab, oov) in zip(values, self.vocab, strict=True)
            ]
            z += self.tables[rows].sum(axis=0)
        h = self.layers[0][2](z)
        for kernel, bias, act in self.layers[1:]:
            h = act(h @ kernel + bias)
        return h.reshape(-1)


def _positions(names: tuple[str, ...], order: tuple[str, ...]) -> np.ndarray | None:
    """Index of each name in `order`, or None if one is missing."""
    if not set(names) <= set(order):
        return None
    return np.array([order.index(n) for n in names], dtype=np.intp)


def load_forward(directory: Path, spec: Any) -> NumpyForward | None:
    """The NumPy forward pass of an exported churn model, or None for an export without one.

    Args:
        directory: the scorer directory (`export_churn`'s output).
        spec: its `inference.churn.FeatureSpec`.

    Raises:
        DataError: the file exists but cannot be read as this model's forward pass.
    """
    path = Path(directory) / FORWARD_FILE
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: unreadable ({exc.__class__.__name__}: {exc})") from exc
    return NumpyForward(arrays, tuple(spec.numeric), tuple(spec.categorical), spec.defaults)


def agreement_rows(spec: Any, n: int = 300, seed: int = 0) -> Columns:
    """The seed customers, then `n` random rows: numerics within three times their default's
    scale of it (and the schema range; a tenth blank), categoricals from the vocabulary or (a
    tenth) unknown or empty. Plausible magnitudes: far outside them (usage 100x the plan) the
    graph's float32 rounding alone moves a probability by ~1e-6."""
    from inference.smoke import SEED_CUSTOMERS

    rng = np.random.default_rng(seed)
    seeds = customers_to_columns(SEED_CUSTOMERS)
    cols: Columns = {}
    for name in spec.numeric:
        feature = schema.BY_NAME.get(name)
        default = float(spec.defaults.get(name, 0.0))
        reach = 3 * max(abs(default), 1.0)
        low, high = default - reach, default + reach
        if feature is not None:
            low = max(low, feature.low if feature.low is not None else low)
            high = min(high, feature.high if feature.high is not None else high)
        x = rng.uniform(low, high, n)
        x[rng.random(n) < 0.1] = np.nan
        first = seeds.get(name, np.full(len(SEED_CUSTOMERS), spec.defaults.get(name, np.nan)))
        cols[name] = np.concatenate([np.asarray(first, np.float64), x])
    for name in spec.categorical:
        values = np.array([*spec.vocabulary[name], "not-a-known-value", ""], dtype=object)
        p = np.r_[np.full(len(values) - 2, 0.9 / (len(values) - 2)), 0.05, 0.05]
        first = seeds.get(name, np.full(len(SEED_CUSTOMERS), spec.defaults.get(name, "")))
        cols[name] = np.concatenate([np.asarray(first, object), rng.choice(values, n, p=p)])
    return cols


def checked_forward(
    directory: Path, spec: Any, graph: Callable[[Columns], np.ndarray]
) -> NumpyForward | None:
    """The export's NumPy pass if it reproduces `graph` (the SavedModel scorer) on
    `agreement_rows`; None for an old export without one; None with a warning if it is
    unreadable or disagrees (the caller keeps scoring with TensorFlow)."""
    try:
        forward = load_forward(directory, spec)
        if forward is None:
            return None
        cols = agreement_rows(spec)
        diff = float(np.max(np.abs(forward(cols) - graph(cols))))
    except DataError as exc:
        log.warning("%s; scoring with TensorFlow", exc)
        return None
    if not diff <= AGREEMENT_TOL:  # NaN disagrees too
        log.warning(
            "%s: the NumPy forward pass differs from the SavedModel by %.3g > %g; "
            "scoring with TensorFlow",
            Path(directory) / FORWARD_FILE,
            diff,
            AGREEMENT_TOL,
        )
        return None
    return forward
