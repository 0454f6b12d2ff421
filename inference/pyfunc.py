"""MLflow pyfunc wrapper around an exported scorer directory (imported only when logging/loading).

`mlflow.pyfunc.load_model("models:/paycycle-churn@champion").predict(df)` works through this in
any environment with the model's logged requirements: the model carries this package's code
(models-from-code, `inference/mlflow_model.py`) and loads its `scorer` artifact with the loader
its registered name selects (`inference.registry.LOADERS`), the same allow-list the service
uses. Columns left out of `df` take the API's documented defaults (`features.schema`). The
service and batch scoring skip the pyfunc and call the compiled scorer directly.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc

MODEL_NAME_KEY = "model_name"  # in the logged model_config


class ScorerModel(mlflow.pyfunc.PythonModel):
    """Loads the `scorer` artifact with its model's loader; `predict` returns its scores."""

    def __init__(self) -> None:
        self._score = None

    def load_context(self, context: Any) -> None:
        from inference.registry import loader_for

        name = (context.model_config or {}).get(MODEL_NAME_KEY)
        self._score = loader_for(str(name))(context.artifacts["scorer"])

    def predict(self, context, model_input, params=None):  # no hints: MLflow reads the signature
        import numpy as np

        return np.asarray(self._score(model_input))
