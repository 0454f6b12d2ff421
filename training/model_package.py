"""What a logged MLflow model carries so it loads anywhere: code, requirements, a signature.

A registered PayCycle model is a pyfunc logged from code (`inference/mlflow_model.py`) with the
packages it needs at load time — `inference/`, `features/` and the core `paycycle/` — copied in
as `code_paths`, and pinned requirements for exactly what that code imports. So a colleague's
notebook or `mlflow models serve` loads it in a fresh virtualenv built from the model's own
`requirements.txt`, without this repository installed.

The signature marks every feature with a documented default as optional: `/churn` answers the
seed's three columns, and so does the pyfunc.
"""

from __future__ import annotations

import importlib
import shutil
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import pandas as pd

from inference.registry import CHURN_MODEL, OFFERS_MODEL, RECOMMENDER_MODEL

CODE_PACKAGES = ("inference", "features", "paycycle")
SKIP_CODE = ("__pycache__", "migrations", "*.pyc")
REQUIRED_FEATURES = ("subscription_duration", "failed_payments", "usage_pattern")
_BASE = ("numpy", "pandas", "pyarrow")
PACKAGES = {
    CHURN_MODEL: (*_BASE, "tensorflow-cpu"),
    RECOMMENDER_MODEL: (*_BASE, "tensorflow-cpu"),
    OFFERS_MODEL: _BASE,
}


def entry_point() -> Path:
    """The models-from-code script MLflow runs to build the pyfunc."""
    return Path(importlib.import_module("inference").__file__).parent / "mlflow_model.py"


def stage_code(dst: Path) -> list[str]:
    """Copy the packages the pyfunc imports (sources only) under `dst`; returns their paths."""
    out = []
    for pkg in CODE_PACKAGES:
        src = Path(importlib.import_module(pkg).__file__).parent
        target = Path(dst) / pkg
        shutil.copytree(src, target, ignore=shutil.ignore_patterns(*SKIP_CODE))
        out.append(str(target))
    return out


def requirements(model_name: str) -> list[str]:
    """Pinned requirements of `model_name`'s inference code (MLflow adds itself)."""
    out = []
    for pkg in PACKAGES[model_name]:
        try:
            out.append(f"{pkg}=={version(pkg)}")
        except PackageNotFoundError:
            out.append(pkg)
    return out


def signature(sample: pd.DataFrame, predictions: Any):
    """`infer_signature`, with every feature that has a documented default optional.

    Numeric features are declared `any`: MLflow refuses to cast an int64 column to double, and
    the seed's own frame (`failed_payments: [0, 1, 3]`) is int64; the scorer casts to float.
    """
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    from features import schema

    inferred = infer_signature(sample, predictions)
    inputs = []
    for col in inferred.inputs.inputs:
        feature = schema.BY_NAME.get(col.name)
        kind = AnyType() if feature is not None and feature.kind == "numeric" else col.type
        required = feature is None or col.name in REQUIRED_FEATURES
        inputs.append(ColSpec(kind, col.name, required=required))
    return ModelSignature(Schema(inputs), inferred.outputs, inferred.params)
