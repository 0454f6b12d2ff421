"""MLflow pyfunc wrapper around an exported scorer directory (imported only when logging/loading).

`mlflow.pyfunc.load_model("models:/paycycle-churn@champion").predict(df)` works through this;
the service and batch scoring skip it and call the compiled scorer from
`inference.registry.load_scorer`. The scorer is loaded by the registered model's name
(`inference.registry.LOADERS`), the same allow-list the service uses.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc


class ScorerModel(mlflow.pyfunc.PythonModel):
    """Loads the `scorer` artifact with its model's loader; `predict` returns its scores."""

    def __init__(self, model_name: str) -> None:
        self.model_name = model_name
        self._score = None

    def load_context(self, context: Any) -> None:
        from inference.registry import loader_for

        self._score = loader_for(self.model_name)(context.artifacts["scorer"])

    def predict(self, context, model_input, params=None):  # no hints: MLflow reads them
        return self._score(model_input)
