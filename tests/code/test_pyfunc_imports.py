"""The logged pyfunc's code imports only what the model's requirements install.

The slow proof is tests/integration/test_mlflow_standalone.py (a fresh virtualenv); this one
catches the usual regression in a second: a module-level import of the settings stack (or any
other project-only dependency) somewhere on the pyfunc's import path.
"""

from __future__ import annotations

import subprocess
import sys

from training import model_package

# installed in the project, absent from every model's requirements.txt and from mlflow's own
PROJECT_ONLY = (
    "pydantic_settings",
    "typer",
    "rich",
    "bentoml",
    "prefect",
    "evidently",
    "optuna",
    "great_expectations",
    "dvc",
)

SCRIPT = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {blocked!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked)")
sys.meta_path.insert(0, Block())
import inference.pyfunc, inference.mlflow_model  # noqa: F401
from inference.registry import MODELS, loader_for
for name in MODELS:
    loader_for(name)
import inference.churn, inference.recommender, inference.offers  # noqa: F401
print("ok")
"""


def test_pyfunc_code_imports_without_project_only_packages():
    assert {"inference", "features", "paycycle"} == set(model_package.CODE_PACKAGES)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(blocked=set(PROJECT_ONLY))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")
