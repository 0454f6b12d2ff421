"""MLflow pyfunc wrapper around an exported scorer directory (imported only when logging/loading).

`mlflow.pyfunc.load_model("models:/paycycle-churn@champion").predict(df)` works through this;
the service and batch scoring skip it and call the compiled scorer via
`training.registry.load_scorer_from_registry`.
"""

from __future__ import annotations

import importlib
from typing import Any

import mlflow.pyfunc


def import_loader(loader: str):
    """`"package.module:function"` → the function."""
    module, _, func = loader.partition(":")
    return getattr(importlib.import_module(module), func)


class ScorerModel(mlflow.pyfunc.PythonModel):
    """Loads the `scorer` artifact with the named loader; `predict` returns probabilities."""

    def __init__(self, loader: str) -> None:
        self.loader = loader
        self._score = None

    def load_context(self, context: Any) -> None:
        self._score = import_loader(self.loader)(context.artifacts["scorer"])

    def predict(self, context, model_input, params=None):  # no hints: MLflow reads them
        return self._score(model_input)
