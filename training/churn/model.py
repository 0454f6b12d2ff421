"""Churn model: a Keras 3 MLP over raw feature columns, with all preprocessing inside the model.

The model takes one named input per feature (`float32` numerics, `string` categoricals, each of
shape `(n, 1)`), so whoever scores it sends raw features: blanks (NaN) are filled with the
training median, heavy-tailed counts also enter as `sign(x)·log1p(|x|)`, numerics are
standardised by a `Normalization` layer adapted on the training rows, categoricals go through
`StringLookup` (unknown values → an out-of-vocabulary slot) to one-hot or an embedding.

Class imbalance: positives get weight `(neg/pos) ** imbalance_power` in the loss; after training
the output bias is shifted by `-log(weight)` (the exact prior correction for a re-weighted
logistic loss), so probabilities stay calibrated (Brier and ECE are checked in evaluation).

Inference path: `export_churn(trained, dir)` writes a TensorFlow SavedModel with a fixed
`serving_default` signature, `feature_spec.json` and the same forward pass as NumPy arrays
(`forward.npz`, `training.churn.forward`); `inference.churn.load_scorer` loads it.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inference.churn import SPEC_FILE, FeatureSpec, default_spec, to_inputs
from inference.numpy_forward import FORWARD_FILE, save_forward
from paycycle.config import ChurnParams
from paycycle.errors import DataError
from training.churn.forward import forward_arrays

LABEL = "churned"


@dataclass
class TrainedModel:
    """A fitted churn model and what it was fitted on."""

    model: Any  # keras.Model
    spec: FeatureSpec
    params: ChurnParams
    seed: int
    history: dict[str, list[float]]
    best_epoch: int
    pos_weight: float
    rows: dict[str, int]

    def predict(self, data: pd.DataFrame | Mapping[str, Any], batch_size: int = 8192) -> np.ndarray:
        """Probabilities from the in-memory model (training/evaluation; serving uses the export)."""
        import tensorflow as tf

        inputs = tf.data.Dataset.from_tensor_slices(to_inputs(data, self.spec)).batch(batch_size)
        out = self.model.predict(inputs, verbose=0)
        return np.asarray(out, dtype=np.float64).reshape(-1)


def split_holdout(
    frame: pd.DataFrame, time_col: str = "as_of"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Time-based split: the last snapshot is the holdout, every earlier one trains."""
    if time_col not in frame.columns or frame[time_col].nunique() < 2:
        raise DataError(f"{time_col}: need at least two snapshots for a time-based holdout")
    last = frame[time_col].max()
    return frame[frame[time_col] < last], frame[frame[time_col] == last]


def _numeric_prep_layer():
    import keras

    @keras.saving.register_keras_serializable(package="paycycle")
    class NumericPrep(keras.layers.Layer):
        """Fill NaN with the training median; append sign(x)·log1p(|x|) for heavy tails."""

        def __init__(self, fill: list[float], log_mask: list[bool], **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.fill, self.log_mask = list(fill), list(log_mask)
            self._log_idx = [i for i, m in enumerate(self.log_mask) if m]

        def call(self, x):
            ops = keras.ops
            x = ops.where(ops.isnan(x), ops.convert_to_tensor(self.fill, dtype=x.dtype), x)
            if not self._log_idx:
                return x
            heavy = ops.take(x, self._log_idx, axis=1)
            return ops.concatenate([x, ops.sign(heavy) * ops.log1p(ops.abs(heavy))], axis=1)

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "fill": self.fill, "log_mask": self.log_mask}

    return NumericPrep


def raw_inputs(spec: FeatureSpec) -> dict[str, Any]:
    """One Keras input per raw feature column: float32 numerics, string categoricals."""
    import keras

    inputs = {n: keras.Input(shape=(1,), name=n, dtype="float32") for n in spec.numeric}
    inputs |= {n: keras.Input(shape=(1,), name=n, dtype="string") for n in spec.categorical}
    return inputs


def numeric_block(train: pd.DataFrame, spec: FeatureSpec, inputs: dict[str, Any]) -> Any:
    """The numeric inputs median-filled, log1p'd where heavy-tailed and normalised, with every
    statistic adapted on `train` (shared by the churn model and the recommender)."""
    import keras

    raw = np.column_stack([train[n].to_numpy(np.float32) for n in spec.numeric])
    fill = np.nan_to_num(np.nanmedian(raw, axis=0), nan=0.0).tolist()
    log_mask = [n in spec.log_features for n in spec.numeric]
    prep = _numeric_prep_layer()(fill, log_mask, name="numeric_prep")
    norm = keras.layers.Normalization(axis=-1, name="numeric_norm")
    norm.adapt(np.asarray(prep(raw)))
    stacked = keras.layers.Concatenate(name="numeric")([inputs[n] for n in spec.numeric])
    return norm(prep(stacked))


def seed_draws(seed: int) -> Callable[[], int]:
    """The seeds Keras draws for initializers and dropout after `set_random_seed(seed)`
    (`keras.src.random.seed_generator.make_default_seed`: `random.randint(1, 10**9)`), in order,
    from a generator of our own instead of Python's global one, which any thread may draw from
    (CI once trained two different models from one seed that way)."""
    draws = random.Random(seed)
    return lambda: draws.randint(1, int(1e9))


def build_model(
    train: pd.DataFrame, spec: FeatureSpec, params: ChurnParams, prior: float, seed: int
):
    """The Keras model, preprocessing adapted on `train` (never on validation or holdout).

    Every random initializer and dropout gets its seed explicitly, in construction order, from
    `seed_draws(seed)`: the weights Keras's own seeding gave, whatever other threads do.
    """
    import keras

    next_seed = seed_draws(seed)

    inputs = raw_inputs(spec)
    parts = [numeric_block(train, spec, inputs)] if spec.numeric else []
    for name in spec.categorical:
        vocab = list(spec.vocabulary[name])
        if params.embedding_dim:
            idx = keras.layers.StringLookup(vocabulary=vocab, name=f"{name}_lookup")(inputs[name])
            emb = keras.layers.Embedding(
                len(vocab) + 1,
                params.embedding_dim,
                embeddings_initializer=keras.initializers.RandomUniform(seed=next_seed()),
                name=f"{name}_emb",
            )
            parts.append(keras.layers.Flatten()(emb(idx)))
        else:
            lookup = keras.layers.StringLookup(
                vocabulary=vocab, output_mode="one_hot", name=f"{name}_onehot"
            )
            parts.append(lookup(inputs[name]))
    x = keras.layers.Concatenate(name="features")(parts) if len(parts) > 1 else parts[0]
    reg = keras.regularizers.L2(params.l2) if params.l2 else None
    for i, units in enumerate(params.hidden_units):
        dense = keras.layers.Dense(
            units,
            activation="relu",
            kernel_initializer=keras.initializers.GlorotUniform(seed=next_seed()),
            kernel_regularizer=reg,
            name=f"dense_{i}",
        )
        x = dense(x)
        if params.dropout:
            x = keras.layers.Dropout(params.dropout, seed=next_seed(), name=f"dropout_{i}")(x)
    bias = keras.initializers.Constant(math.log(prior / (1 - prior)))
    out = keras.layers.Dense(
        1,
        activation="sigmoid",
        kernel_initializer=keras.initializers.GlorotUniform(seed=next_seed()),
        bias_initializer=bias,
        name="churn",
    )(x)
    model = keras.Model(inputs=inputs, outputs=out, name="paycycle_churn")
    model.compile(
        optimizer=keras.optimizers.Adam(params.learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    return model


def _split_validation(frame: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """A validation mask holding out whole customers, so no customer is on both sides."""
    if "customer_id" in frame.columns:
        ids = np.sort(frame["customer_id"].unique())
        held = np.random.default_rng(seed).choice(ids, int(len(ids) * fraction), replace=False)
        return frame["customer_id"].isin(held).to_numpy()
    return np.random.default_rng(seed).random(len(frame)) < fraction


def _check_frame(frame: pd.DataFrame, spec: FeatureSpec) -> np.ndarray:
    missing = [c for c in [*spec.columns, LABEL] if c not in frame.columns]
    if missing:
        raise DataError(f"{missing[0]}: column missing from the training frame")
    y = frame[LABEL].to_numpy()
    if not np.isin(y, (0, 1)).all():
        raise DataError(f"{LABEL}: labels must be 0/1")
    if y.min() == y.max():
        raise DataError(f"{LABEL}: need both churned and retained rows to train")
    return y.astype(np.float32)


def train_churn(
    frame: pd.DataFrame,
    params: ChurnParams,
    seed: int | None = None,
    spec: FeatureSpec | None = None,
    callbacks: list[Any] | None = None,
    epochs: int | None = None,
) -> TrainedModel:
    """Fit the churn model on `frame` (training rows only; keep the holdout out of it).

    Args:
        frame: feature columns of `spec` plus `churned` (0/1) and, ideally, `customer_id`.
        params: architecture, optimiser, imbalance and early-stopping settings.
        seed: overrides `params.seed`; the same seed and data give the same weights.
        spec: feature spec; defaults to the `features.schema` contract.
        callbacks: extra Keras callbacks (MLflow epoch logging, Optuna pruning).
        epochs: overrides `params.epochs` (tuning uses few).

    Returns:
        The trained model with its history, best epoch and the positive-class weight used.

    Raises:
        DataError: a missing column, non-binary labels or a single class.
    """
    import keras
    import tensorflow as tf

    spec = spec or default_spec()
    seed = params.seed if seed is None else seed
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    y = _check_frame(frame, spec)
    val = _split_validation(frame, params.val_fraction, seed)
    if y[val].min() == y[val].max():  # tiny tables: fall back to a row split
        val = np.random.default_rng(seed).random(len(frame)) < params.val_fraction
    train, y_train = frame[~val], y[~val]
    pos = max(float(y_train.mean()), 1e-6)
    pos_weight = ((1 - pos) / pos) ** params.imbalance_power
    weighted_prior = pos * pos_weight / (pos * pos_weight + (1 - pos))
    model = build_model(train, spec, params, weighted_prior, seed)
    weights = np.where(y_train == 1, pos_weight, 1.0).astype(np.float32)
    data = tf.data.Dataset.from_tensor_slices((to_inputs(train, spec), y_train, weights))
    batch = min(params.batch_size, max(32, len(train) // 20))  # small tables: >= ~20 steps
    data = data.shuffle(len(train), seed=seed).batch(batch).prefetch(2)
    val_data = tf.data.Dataset.from_tensor_slices((to_inputs(frame[val], spec), y[val])).batch(8192)
    stop = keras.callbacks.EarlyStopping(
        monitor="val_auc", mode="max", patience=params.patience, restore_best_weights=True
    )
    fit = model.fit(
        data,
        validation_data=val_data,
        epochs=epochs or params.epochs,
        callbacks=[stop, *(callbacks or [])],
        verbose=0,
    )
    out_layer = model.get_layer("churn")
    kernel, bias = out_layer.get_weights()
    out_layer.set_weights([kernel, bias - np.float32(math.log(pos_weight))])
    history = {k: [float(v) for v in vs] for k, vs in fit.history.items()}
    best = int(np.argmax(history["val_auc"])) + 1 if history.get("val_auc") else len(fit.epoch)
    return TrainedModel(
        model=model,
        spec=spec,
        params=params,
        seed=seed,
        history=history,
        best_epoch=best,
        pos_weight=float(pos_weight),
        rows={"train": int((~val).sum()), "validation": int(val.sum())},
    )


def export_churn(trained: TrainedModel, path: Path) -> Path:
    """Write the SavedModel (fixed `serving_default` signature), its `feature_spec.json` and
    the forward pass as arrays (`inference.numpy_forward.FORWARD_FILE`).

    Args:
        trained: the fitted model.
        path: a new directory.

    Returns:
        `path`, loadable with `load_scorer`.
    """
    path = Path(path)
    trained.model.export(str(path), format="tf_saved_model", verbose=False)
    (path / SPEC_FILE).write_text(trained.spec.to_json())
    save_forward(path / FORWARD_FILE, forward_arrays(trained.model, trained.spec))
    return path
