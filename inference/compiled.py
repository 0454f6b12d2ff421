"""The service's compiled call into a registry scorer: two packed tensors, one graph call.

A churn scorer from `inference.churn.load_scorer` calls the SavedModel's `serving_default`
signature with one `(n, 1)` tensor per feature: 22 `tf.constant`s and a 22-argument structured
call, ~1.2 ms even for one row. `compile_scorer` wraps that signature in a `tf.function` with a
fixed two-tensor signature (numerics `float32 (n, k)`, categoricals `string (n, m)`) that slices
the columns inside the graph, which halves the fixed cost per batch. The probabilities are the
scorer's own (the tests and the promotion smoke test compare them). A scorer without an exported
SavedModel is used as it is.

That graph call still costs ~1 ms, more than the whole HTTP request around it: when the export
carries its forward pass as arrays and they agreed with the SavedModel at load (`scorer.forward`,
`inference.numpy_forward.checked_forward`), that NumPy pass (tens of microseconds) is used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from features.columns import Columns

Compiled = Callable[[Columns], np.ndarray]


def compile_scorer(scorer: Any) -> Compiled:
    """Return `columns -> probabilities` for a registry scorer, compiled when it allows.

    Args:
        scorer: `inference.registry.load_scorer`'s scorer; if it carries `saved_model` and `spec`
            (a `inference.churn.FeatureSpec`), the packed graph is built; if it carries a
            `forward` (`inference.numpy_forward.NumpyForward`), that is used instead.

    Returns:
        A function of request columns (`features.columns.customers_to_columns`).
    """
    forward = getattr(scorer, "forward", None)
    if forward is not None:
        return forward
    saved = getattr(scorer, "saved_model", None)
    spec = getattr(scorer, "spec", None)
    if saved is None or spec is None or "serving_default" not in saved.signatures:
        return lambda cols: np.asarray(scorer(cols), dtype=np.float64).reshape(-1)
    import tensorflow as tf

    signature = saved.signatures["serving_default"]
    numeric, categorical = list(spec.numeric), list(spec.categorical)
    defaults = spec.defaults

    @tf.function(
        input_signature=[
            tf.TensorSpec([None, len(numeric)], tf.float32),
            tf.TensorSpec([None, len(categorical)], tf.string),
        ]
    )
    def packed(x, s):
        inputs = {name: x[:, i : i + 1] for i, name in enumerate(numeric)}
        inputs |= {name: s[:, i : i + 1] for i, name in enumerate(categorical)}
        return tf.reshape(next(iter(signature(**inputs).values())), [-1])

    call = packed.get_concrete_function()

    def score(cols: Columns) -> np.ndarray:
        n = len(next(iter(cols.values())))
        x = np.empty((n, len(numeric)), dtype=np.float32)
        for i, name in enumerate(numeric):
            x[:, i] = cols[name] if name in cols else float(defaults.get(name, np.nan))
        s = np.empty((n, len(categorical)), dtype=object)
        for i, name in enumerate(categorical):
            s[:, i] = cols[name] if name in cols else str(defaults.get(name, ""))
        out = call(tf.constant(x), tf.constant(s.astype(str)))
        return out.numpy().astype(np.float64)

    score.saved_model = saved  # type: ignore[attr-defined]  # keep the graph alive
    return score
