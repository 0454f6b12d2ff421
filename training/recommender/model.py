"""Next-best plan/add-on recommender: a Keras softmax over actions with owned items masked out.

Why a multi-class softmax and not a two-tower retrieval model: the catalog has nine items (five
add-ons, four plans) and no item side information worth a tower; two-tower models earn their keep
when items are many and must be retrieved by nearest neighbour. Here one MLP over the customer's
features with one output per item is smaller, trains on a few thousand adoptions, and answers the
question the evaluation asks — *which* item does this customer adopt next — directly: trained on
customers who adopted something in the window, the softmax estimates P(item | adoption), which
ranks items exactly as P(item) does. Multi-label sigmoids would spend capacity on *whether* the
customer adopts anything, which does not change a ranking.

Plans enter as two relative actions, `upgrade` and `downgrade` (one tier, as plans move), not
as four absolute plans: "pro for a growth customer at 140% usage" and "growth for a starter
customer at 140%" are the same decision, so the data is pooled; the scorer maps the actions back
to plan items through the plan in force. The softmax is *masked* inside the model (a `mask`
input, 1 = allowed): add-ons already owned, upgrades from the top plan and downgrades from the
bottom one get probability 0, so the model never learns from or ranks impossible items. At
scoring time the plan moves must also make sense: an upgrade only when usage (last month or the
3-month mean) is at least `upgrade_min_usage` of the included units, a downgrade only when both
are at most `downgrade_max_usage`; the current plan is never an item.

Inference: `export_recommender` writes a SavedModel and `rec_spec.json` that
`inference.recommender.load_recommender` loads as a compiled scorer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inference.churn import FeatureSpec
from inference.recommender import (
    MASK,
    SPEC_FILE,
    RecSpec,
    feature_spec,
    model_inputs,
    prepare_inputs,
    structural_mask,
)
from paycycle.config import RecommendParams
from paycycle.errors import DataError
from training.recommender import data as rd


def _masked_softmax_layer():
    import keras

    @keras.saving.register_keras_serializable(package="paycycle")
    class MaskedSoftmax(keras.layers.Layer):
        """Softmax over the allowed actions only (mask 1 = allowed)."""

        def call(self, logits, mask):
            ops = keras.ops
            return ops.softmax(logits + (1.0 - mask) * -1e9, axis=-1)

    return MaskedSoftmax


def build_model(train: pd.DataFrame, spec: FeatureSpec, params: RecommendParams, seed: int):
    """The Keras model; numeric preprocessing adapted on `train` only; initializers and dropout
    seeded explicitly (`training.churn.model.seed_draws`, the seeds Keras would draw)."""
    import keras

    # the churn model's preprocessing and seeding
    from training.churn.model import numeric_block, raw_inputs, seed_draws

    next_seed = seed_draws(seed)

    inputs = raw_inputs(spec)
    mask = keras.Input(shape=(len(rd.ACTIONS),), name=MASK, dtype="float32")
    parts = [numeric_block(train, spec, inputs)]
    for name in spec.categorical:
        lookup = keras.layers.StringLookup(
            vocabulary=list(spec.vocabulary[name]), output_mode="one_hot", name=f"{name}_onehot"
        )
        parts.append(lookup(inputs[name]))
    x = keras.layers.Concatenate(name="features")(parts)
    for i, units in enumerate(params.hidden_units):
        kernel = keras.initializers.GlorotUniform(seed=next_seed())
        x = keras.layers.Dense(
            units, activation="relu", kernel_initializer=kernel, name=f"dense_{i}"
        )(x)
        if params.dropout:
            x = keras.layers.Dropout(params.dropout, seed=next_seed(), name=f"dropout_{i}")(x)
    kernel = keras.initializers.GlorotUniform(seed=next_seed())
    logits = keras.layers.Dense(len(rd.ACTIONS), kernel_initializer=kernel, name="logits")(x)
    probs = _masked_softmax_layer()(name="actions")(logits, mask)
    model = keras.Model(inputs={**inputs, MASK: mask}, outputs=probs, name="paycycle_recommender")
    model.compile(
        optimizer=keras.optimizers.Adam(params.learning_rate), loss="categorical_crossentropy"
    )
    return model


@dataclass
class TrainedRecommender:
    """A fitted recommender and what it was fitted on."""

    model: Any  # keras.Model
    spec: RecSpec
    params: RecommendParams
    history: dict[str, list[float]] = field(default_factory=dict)
    best_epoch: int = 0
    rows: dict[str, int] = field(default_factory=dict)


def train_recommender(
    table: pd.DataFrame,
    params: RecommendParams,
    seed: int | None = None,
    callbacks: list[Any] | None = None,
    epochs: int | None = None,
) -> TrainedRecommender:
    """Fit the recommender on stacked snapshots (`rec_data.build_rec_table`, training rows only).

    Args:
        table: inputs plus `y_<action>` labels; rows without an adoption are skipped.
        params: architecture, optimiser, early stopping, plan-move thresholds.
        seed: overrides `params.seed`.
        callbacks: extra Keras callbacks (MLflow epoch logging).
        epochs: overrides `params.epochs`.

    Raises:
        DataError: no labels or no adoptions to learn from.
    """
    import keras
    import tensorflow as tf

    missing = [c for c in rd.LABEL_COLUMNS if c not in table.columns]
    if missing:
        raise DataError(f"{missing[0]}: label column missing from the recommender table")
    seed = params.seed if seed is None else seed
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    spec = RecSpec(
        feature_spec(), params.upgrade_min_usage, params.downgrade_max_usage, params.window_days
    )
    y_all = table[list(rd.LABEL_COLUMNS)].to_numpy(np.float32)
    rows = table.loc[y_all.sum(axis=1) > 0]
    if len(rows) < 20:
        raise DataError(f"adoptions: only {len(rows)} rows with an adoption; need at least 20")
    frame = prepare_inputs(rows.drop(columns=["addons"], errors="ignore"))
    y = rows[list(rd.LABEL_COLUMNS)].to_numpy(np.float32)
    mask = structural_mask(frame)
    y = y * mask
    keep = y.sum(axis=1) > 0
    frame, y, mask = frame.loc[keep], y[keep] / y[keep].sum(axis=1, keepdims=True), mask[keep]
    ids = np.sort(frame["customer_id"].unique()) if "customer_id" in frame else None
    rng = np.random.default_rng(seed)
    if ids is not None:
        held = rng.choice(ids, int(len(ids) * params.val_fraction), replace=False)
        val = frame["customer_id"].isin(held).to_numpy()
    else:
        val = rng.random(len(frame)) < params.val_fraction
    fs = spec.features
    model = build_model(frame.loc[~val], fs, params, seed)
    data = tf.data.Dataset.from_tensor_slices(
        (model_inputs(frame.loc[~val], fs, mask[~val]), y[~val])
    )
    data = data.shuffle(int((~val).sum()), seed=seed).batch(params.batch_size).prefetch(2)
    val_data = tf.data.Dataset.from_tensor_slices(
        (model_inputs(frame.loc[val], fs, mask[val]), y[val])
    ).batch(8192)
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", patience=params.patience, restore_best_weights=True
    )
    fit = model.fit(
        data,
        validation_data=val_data,
        epochs=epochs or params.epochs,
        callbacks=[stop, *(callbacks or [])],
        verbose=0,
    )
    history = {k: [float(v) for v in vs] for k, vs in fit.history.items()}
    best = int(np.argmin(history["val_loss"])) + 1 if history.get("val_loss") else len(fit.epoch)
    return TrainedRecommender(
        model,
        spec,
        params,
        history,
        best,
        {"train": int((~val).sum()), "validation": int(val.sum())},
    )


def export_recommender(trained: TrainedRecommender, path: Path) -> Path:
    """Write the SavedModel (fixed `serving_default` signature) and `rec_spec.json` to `path`."""
    path = Path(path)
    trained.model.export(str(path), format="tf_saved_model", verbose=False)
    (path / SPEC_FILE).write_text(trained.spec.to_json())
    return path
