"""The trained churn model's inference graph as plain arrays, read from its layers by name.

`export_churn` writes these beside the SavedModel (`inference.numpy_forward` documents the
format and evaluates it). Every value comes from the Keras layer `build_model` named (the median
fill and log mask of `numeric_prep`, the statistics of `numeric_norm`, the vocabulary of each
`<name>_lookup`/`<name>_onehot`, the weights of `<name>_emb`, `dense_<i>` and `churn`), and the
layer options the NumPy pass relies on are checked here, so a change to `build_model` fails at
export instead of scoring differently.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from inference.churn import FeatureSpec


def _layer(model: Any, name: str) -> Any | None:
    try:
        return model.get_layer(name)
    except ValueError:
        return None


def _numeric_arrays(model: Any, spec: FeatureSpec) -> dict[str, np.ndarray]:
    import keras

    if not spec.numeric:
        empty = np.zeros(0, np.float32)
        return {"fill": empty, "log_mask": np.zeros(0, bool), "mean": empty, "variance": empty}
    prep, norm = model.get_layer("numeric_prep"), model.get_layer("numeric_norm")
    if norm.invert:
        raise ValueError("numeric_norm: an inverted Normalization is not a forward pass")
    return {
        "fill": np.asarray(prep.fill, np.float32),
        "log_mask": np.asarray(prep.log_mask, bool),
        "mean": keras.ops.convert_to_numpy(norm.mean).reshape(-1),
        "variance": keras.ops.convert_to_numpy(norm.variance).reshape(-1),
    }


def _categorical_arrays(model: Any, name: str) -> dict[str, np.ndarray]:
    """A categorical's vocabulary (OOV slot dropped) and the matrix its index selects from."""
    lookup = _layer(model, f"{name}_lookup") or model.get_layer(f"{name}_onehot")
    if lookup.num_oov_indices != 1 or lookup.mask_token is not None:
        raise ValueError(f"{lookup.name}: expected one OOV slot at index 0 and no mask token")
    vocab = [str(v) for v in lookup.get_vocabulary()[1:]]
    if lookup.output_mode == "one_hot":
        table = np.eye(len(vocab) + 1, dtype=np.float32)
    elif lookup.output_mode == "int":
        table = model.get_layer(f"{name}_emb").get_weights()[0]
    else:
        raise ValueError(f"{lookup.name}: output_mode {lookup.output_mode!r}")
    return {f"vocab.{name}": np.asarray(vocab, dtype=str), f"table.{name}": table}


def forward_arrays(model: Any, spec: FeatureSpec) -> dict[str, np.ndarray]:
    """Everything `inference.numpy_forward.NumpyForward` needs to reproduce `model`.

    Args:
        model: `build_model`'s Keras model, trained (the output bias already shifted).
        spec: its feature spec (the input order).

    Returns:
        Named arrays for `inference.numpy_forward.save_forward`.

    Raises:
        ValueError: a layer is missing or configured in a way the NumPy pass does not reproduce.
    """
    import keras

    arrays = _numeric_arrays(model, spec) | {"epsilon": np.asarray(keras.backend.epsilon())}
    for name in spec.categorical:
        arrays |= _categorical_arrays(model, name)
    dense = []
    while (layer := _layer(model, f"dense_{len(dense)}")) is not None:
        dense.append(layer)
    dense.append(model.get_layer("churn"))
    if len(dense) != sum(isinstance(x, keras.layers.Dense) for x in model.layers):
        raise ValueError("dense layers not named dense_<i> in order, then churn")
    activations = []
    for i, layer in enumerate(dense):
        kernel, bias = layer.get_weights()
        arrays |= {f"kernel.{i}": kernel, f"bias.{i}": bias}
        activations.append(layer.activation.__name__)
    arrays["activations"] = np.asarray(activations, dtype=str)
    return arrays
