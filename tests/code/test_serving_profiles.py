"""`/recommend` and `/offer` profiles: validation and the vectorised recommender inputs."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from features import schema
from inference.profiles import recommender_frame
from paycycle import catalog
from serving.schemas import DERIVED, UNBOUNDED_CAP, Profile

SEED = {"subscription_duration": 10, "failed_payments": 0, "usage_pattern": 80, "plan_id": 2}


def _number(low: float, high: float | None):
    return st.floats(low, high if high is not None else 1e6, allow_nan=False)


def _feature(feature: schema.Feature):
    if feature.kind == "categorical":
        return st.sampled_from(schema.VOCABULARY[feature.name])
    return _number(feature.low, feature.high)


profiles = st.lists(
    st.fixed_dictionaries(
        {
            **{n: _feature(schema.BY_NAME[n]) for n in schema.REQUIRED},
            "plan_id": st.sampled_from([p[0] for p in catalog.PLANS]),
        },
        optional={
            **{
                f.name: _feature(f)
                for f in schema.FEATURES
                if f.name not in schema.REQUIRED and f.name not in DERIVED
            },
            "addons": st.lists(st.sampled_from(catalog.ADDON_NAMES), max_size=5),
            "hist_usage_ratio": _number(0, 50) | st.none(),
            **{f"hist_{a[3]}": _number(0, 1e4) | st.none() for a in catalog.ADDONS},
        },
    ),
    min_size=1,
    max_size=5,
)


@settings(max_examples=40, deadline=None)
@given(profiles)
def test_recommender_frame_matches_prepare_inputs(rows: list[dict]) -> None:
    from inference.recommender import feature_spec, prepare_inputs

    parsed = [Profile.model_validate(r) for r in rows]
    fast = recommender_frame(parsed)
    records = [{**p.model_dump(), **{n: getattr(p, n) for n in DERIVED}} for p in parsed]
    slow = prepare_inputs(records)
    spec = feature_spec()
    for name in (*spec.numeric, "plan_tier"):
        np.testing.assert_allclose(fast[name].to_numpy(float), slow[name].to_numpy(float),
                                   rtol=1e-12, err_msg=name)  # fmt: skip
    for name in spec.categorical:
        assert fast[name].tolist() == slow[name].tolist(), name


def test_profile_derives_tier_addon_count_fit_and_price() -> None:
    p = Profile.model_validate({**SEED, "plan_id": 3, "usage_pattern": 250, "addons": ["sms_pack"]})
    assert (p.plan_tier, p.addons_count) == (3.0, 1.0)
    assert p.plan_fit == pytest.approx(np.log(2.5))
    assert p.monthly_charge_usd == 99.0  # the plan's list price unless sent
    annual = Profile.model_validate({**SEED, "cycle": "annual"})
    assert annual.monthly_charge_usd == pytest.approx(49 * 10 / 12, abs=0.01)
    sent = Profile.model_validate({**SEED, "monthly_charge_usd": 12.5})
    assert sent.monthly_charge_usd == 12.5


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"plan_id": 9}, "plan_id"),
        ({"plan_id": "2"}, "plan_id"),
        ({"plan_id": True}, "plan_id"),
        ({"plan_id": None}, "plan_id"),
        ({"usage_pattern": -1}, "usage_pattern"),
        ({"hist_usage_ratio": -0.5}, "hist_usage_ratio"),
        ({"hist_feat_sms": -1}, "hist_feat_sms"),
        ({"feat_api_calls": -3}, "feat_api_calls"),
        ({"addons": ["gold_plan"]}, "addons"),
        ({"addons": "analytics"}, "addons"),
        ({"plan_tier": 3}, "plan_tier"),  # derived from plan_id, never sent
        ({"hist_usage_ratio": UNBOUNDED_CAP * 10}, "hist_usage_ratio"),
    ],
)
def test_bad_profile_names_the_field(change: dict, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        Profile.model_validate({**SEED, **change})
    assert field in [str(part) for e in err.value.errors() for part in e["loc"]]


def test_missing_plan_is_an_error() -> None:
    with pytest.raises(ValidationError) as err:
        Profile.model_validate({k: v for k, v in SEED.items() if k != "plan_id"})
    assert err.value.errors()[0]["loc"] == ("plan_id",)
