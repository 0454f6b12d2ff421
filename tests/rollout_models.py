"""Deliberately bad churn challengers, built and registered as real model versions.

Each is a TensorFlow SavedModel with the churn model's `serving_default` signature (one `(n, 1)`
tensor per feature of `inference.churn.default_spec`) plus its `feature_spec.json`, logged and
registered through `training.tracking` like a trained model, so the service loads it by name
from the registry's allow-list exactly as it loads the champion:

- `constant`: answers 0.99 for everyone;
- `raising`: raises (a TF assertion) on any batch holding a customer with `usage_pattern` at
  or above `RAISE_AT`: send that to a tenth of requests and it fails on a tenth of them.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

import pandas as pd

RAISE_AT = 500.0  # usage_pattern (percent of plan) that makes the raising model fail


def export_bad_model(kind: str, path: Path) -> Path:
    """Write the `constant` or `raising` SavedModel and its feature spec to `path`."""
    import tensorflow as tf

    from inference.churn import SPEC_FILE, default_spec

    spec = default_spec()
    signature = {n: tf.TensorSpec([None, 1], tf.float32, name=n) for n in spec.numeric} | {
        n: tf.TensorSpec([None, 1], tf.string, name=n) for n in spec.categorical
    }

    class Bad(tf.Module):
        @tf.function(input_signature=[signature])
        def serve(self, inputs):
            usage = tf.reshape(inputs["usage_pattern"], [-1])
            out = tf.fill(tf.shape(usage), 0.99)
            if kind == "raising":
                check = tf.debugging.assert_less(usage, RAISE_AT, message="challenger fault")
                with tf.control_dependencies([check]):
                    out = tf.identity(out)
            return {"churn_probability": out}

    module = Bad()
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})
    (path / SPEC_FILE).write_text(spec.to_json())
    return path


def register_bad_challenger(settings, kind: str) -> str:
    """Export, log and register a bad model as `paycycle-churn@challenger`; its version."""
    import mlflow

    from inference.churn import load_scorer
    from inference.registry import CHURN_MODEL
    from inference.smoke import SEED_CUSTOMERS
    from training import registry, tracking

    tracking.configure(settings)
    mlflow.set_experiment("rollout-bad-challengers")
    with tempfile.TemporaryDirectory() as tmp, mlflow.start_run(run_name=f"bad-{kind}"):
        export = export_bad_model(kind, Path(tmp) / "scorer")
        sample = pd.DataFrame(SEED_CUSTOMERS)
        uri = tracking.log_scorer_model(export, sample, load_scorer(export)(sample), CHURN_MODEL)
        return registry.register_candidate(settings, uri, CHURN_MODEL, {"test": kind})


def service_env(root: Path, tracking_uri: str, store_url: str, token: str) -> dict[str, str]:
    """The environment of a service rooted in `root` that reads rollouts from `store_url`."""
    return {
        **os.environ,
        "PAYCYCLE_API_TOKEN": token,
        "PAYCYCLE_LINK_SECRET": secrets.token_urlsafe(32),
        "MLFLOW_TRACKING_URI": tracking_uri,
        "BENTOML_HOME": str(root / "bentoml"),
        "PAYCYCLE_ROOT": str(root),
        "PAYCYCLE_DATABASE_URL": store_url,
    }
