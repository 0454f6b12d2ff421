"""Request customers → feature columns: the one conversion `/churn`, the offer policy and the
request log share (NumPy only, no pandas on the request path)."""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from features import schema

Columns = dict[str, np.ndarray]


class FeatureColumns(dict):
    """`Columns` that also keep the two matrices their columns are views of: `numeric`
    (float64, rows x `NUMERIC`) and `categorical` (object, rows x `CATEGORICAL`). The request log
    concatenates thousands of small batches with one call per matrix instead of one per column."""

    numeric: np.ndarray
    categorical: np.ndarray

    @classmethod
    def of(cls, numeric: np.ndarray, categorical: np.ndarray) -> FeatureColumns:
        """Columns over these matrices (`NUMERIC` and `CATEGORICAL` order), as views."""
        cols = cls({name: numeric[:, i] for i, name in enumerate(NUMERIC)})
        cols.update({name: categorical[:, i] for i, name in enumerate(CATEGORICAL)})
        cols.numeric, cols.categorical = numeric, categorical
        return cols


# Feature names and defaults in schema order (pydantic has already checked types and bounds).
NUMERIC = tuple(f.name for f in schema.FEATURES if f.kind == "numeric")
CATEGORICAL = tuple(f.name for f in schema.FEATURES if f.kind != "numeric")
_NUMERIC_DEFAULTS = np.array([float(schema.BY_NAME[n].default) for n in NUMERIC])
_CATEGORICAL_DEFAULTS = np.array([str(schema.BY_NAME[n].default) for n in CATEGORICAL], object)
_get_numeric = operator.attrgetter(*NUMERIC)
_get_categorical = operator.attrgetter(*CATEGORICAL)


def customers_to_columns(customers: Sequence[Any]) -> FeatureColumns:
    """Validated customer models (or dicts) -> one array per feature, defaults filled.

    Mirrors `features.schema.to_frame` (the tests check they agree) without its pandas cost:
    one C-level attribute fetch per customer, then vectorised default filling (an absent
    number arrives as None -> NaN; the request schema rejects NaN itself).
    """
    if customers and isinstance(customers[0], Mapping):
        num_rows = [tuple(r.get(n) for n in NUMERIC) for r in customers]
        cat_rows = [tuple(r.get(n) for n in CATEGORICAL) for r in customers]
    else:
        num_rows = [_get_numeric(c) for c in customers]
        cat_rows = [_get_categorical(c) for c in customers]
    x = np.array(num_rows, dtype=np.float64).reshape(len(customers), len(NUMERIC))
    x = np.where(np.isnan(x), _NUMERIC_DEFAULTS, x)
    s = np.array(cat_rows, dtype=object).reshape(len(customers), len(CATEGORICAL))
    s = np.where(s == None, _CATEGORICAL_DEFAULTS, s)  # noqa: E711 - elementwise
    return FeatureColumns.of(x, s)
