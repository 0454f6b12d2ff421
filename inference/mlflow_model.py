"""The models-from-code entry point MLflow runs when it loads a PayCycle model.

`training.tracking.log_scorer_model` logs this file as the pyfunc's `python_model` together
with `inference/`, `features/` and the core as `code_paths`, so `mlflow.pyfunc.load_model` works
in a fresh environment built from the model's own requirements. PayCycle never imports it.
"""

import mlflow.models

from inference.pyfunc import ScorerModel

mlflow.models.set_model(ScorerModel())
