"""The serving fast path builds the same feature columns as `features.schema.to_frame`."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from features import schema
from features.columns import customers_to_columns
from serving.schemas import UNBOUNDED_CAP, Customer


def _value(feature: schema.Feature):
    if feature.kind == "categorical":
        return st.sampled_from(schema.VOCABULARY[feature.name])
    high = feature.high if feature.high is not None else UNBOUNDED_CAP
    return st.floats(feature.low, high, allow_nan=False)


records = st.lists(
    st.fixed_dictionaries(
        {n: _value(schema.BY_NAME[n]) for n in schema.REQUIRED},
        optional={
            f.name: _value(f) | st.none() for f in schema.FEATURES if f.name not in schema.REQUIRED
        },
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=60, deadline=None)
@given(records)
def test_columns_match_to_frame(rows: list[dict]) -> None:
    customers = [Customer.model_validate(r) for r in rows]
    cols = customers_to_columns(customers)
    frame = schema.to_frame(rows, strict=True)
    assert list(cols) == schema.COLUMNS
    for name in schema.NUMERIC:
        np.testing.assert_array_equal(cols[name], frame[name].to_numpy())
    for name in schema.CATEGORICAL:
        assert cols[name].tolist() == frame[name].tolist()


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"failed_payments": -1}, "failed_payments"),
        ({"usage_pattern": "80"}, "usage_pattern"),
        ({"subscription_duration": None}, "subscription_duration"),
        ({"active_share": 1.5}, "active_share"),
        ({"country": "Atlantis"}, "country"),
        ({"unknown": 1}, "unknown"),
    ],
)
def test_customer_rejects_what_to_frame_rejects(patch: dict, field: str) -> None:
    row = {"subscription_duration": 10, "failed_payments": 0, "usage_pattern": 80, **patch}
    with pytest.raises(ValidationError) as err:
        Customer.model_validate(row)
    assert field in str(err.value)
