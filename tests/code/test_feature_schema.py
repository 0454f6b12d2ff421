"""The feature contract the serving request path and training share."""

from __future__ import annotations

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from features import schema
from paycycle.errors import DataError

SEED = pd.DataFrame(
    {
        "subscription_duration": [10, 15, 3],
        "failed_payments": [0, 1, 3],
        "usage_pattern": [80, 50, 20],
    }
)


def test_seed_example_fills_defaults() -> None:
    frame = schema.to_frame(SEED)
    assert list(frame.columns) == schema.COLUMNS
    assert frame["segment"].eq("smb").all()
    assert frame[schema.NUMERIC].dtypes.eq("float64").all()


@pytest.mark.parametrize(
    ("record", "field", "problem"),
    [
        (
            {"subscription_duration": 1, "failed_payments": -1, "usage_pattern": 5},
            "failed_payments",
            "at least",
        ),
        (
            {"subscription_duration": 1, "failed_payments": 0, "usage_pattern": "lots"},
            "usage_pattern",
            "number",
        ),
        ({"subscription_duration": 1, "failed_payments": 0}, "usage_pattern", "missing"),
        (
            {"subscription_duration": None, "failed_payments": 0, "usage_pattern": 1},
            "subscription_duration",
            "null",
        ),
        (
            {
                "subscription_duration": 1,
                "failed_payments": 0,
                "usage_pattern": 1,
                "segment": "whale",
            },
            "segment",
            "unknown",
        ),
        (
            {"subscription_duration": 1, "failed_payments": 0, "usage_pattern": float("inf")},
            "usage_pattern",
            "finite",
        ),
    ],
)
def test_bad_records_name_the_field(record: dict, field: str, problem: str) -> None:
    with pytest.raises(DataError) as err:
        schema.to_frame([record])
    assert str(err.value).startswith(field) and problem in str(err.value)


def test_empty_list_is_an_error() -> None:
    with pytest.raises(DataError, match="at least one"):
        schema.to_frame([])


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "subscription_duration": st.floats(0, 1200),
                "failed_payments": st.integers(0, 1000),
                "usage_pattern": st.floats(0, 100_000),
            }
        ),
        min_size=1,
        max_size=20,
    )
)
def test_any_valid_record_is_accepted(records: list[dict]) -> None:
    frame = schema.to_frame(records)
    assert len(frame) == len(records)
    assert frame[schema.NUMERIC].notna().all().all()
