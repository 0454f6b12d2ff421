"""Recommender inputs: bad records raise a DataError naming the field; the CLI exits 2 on them."""

from __future__ import annotations

import os
import subprocess
import sys

import pandas as pd
import pytest

from inference.recommender import prepare_inputs, structural_mask
from paycycle import config
from paycycle.errors import EXIT_DATA, DataError

GOOD = {"subscription_duration": 10, "failed_payments": 0, "usage_pattern": 80, "plan_id": 2}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"plan_id": 9}, "plan_id"),
        ({"plan_id": "gold"}, "plan_id"),
        ({"usage_units": -5}, "usage_units"),
        ({"usage_pattern": -1}, "usage_pattern"),
        ({"usage_ratio": -0.5}, "usage_ratio"),
        ({"addons": "analytics,teleportation"}, "addons"),
        ({"plan_id": None, "plan_tier": 7}, "plan_tier"),
        ({"failed_payments": -2}, "failed_payments"),
    ],
)
def test_bad_input_names_the_field(change: dict, field: str) -> None:
    record = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    with pytest.raises(DataError, match=rf"^{field}: "):
        prepare_inputs([record])


def test_empty_request_is_an_error() -> None:
    with pytest.raises(DataError, match="customers"):
        prepare_inputs([])


def test_good_input_is_completed() -> None:
    frame = prepare_inputs([{**GOOD, "usage_units": 7_500, "addons": ["analytics", "sms_pack"]}])
    row = frame.iloc[0]
    assert row["plan_tier"] == 2 and row["usage_ratio"] == pytest.approx(1.5)
    assert row["usage_pattern"] == pytest.approx(150)
    assert row["owned_analytics"] == 1 and row["owned_sms_pack"] == 1
    assert row["owned_api_access"] == 0
    mask = structural_mask(frame)[0]  # analytics and sms owned; both plan moves exist on growth
    assert mask.tolist() == [1, 1, 0, 1, 0, 1, 1]


def test_comma_string_and_list_of_addons_agree() -> None:
    a = prepare_inputs([{**GOOD, "addons": "analytics, api_access"}])
    b = prepare_inputs([{**GOOD, "addons": ["api_access", "analytics"]}])
    cols = [c for c in a.columns if c.startswith("owned_")]
    pd.testing.assert_frame_equal(a[cols], b[cols])


def _cli(project: config.Settings, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PAYCYCLE_ROOT": str(project.root)}
    return subprocess.run(
        [sys.executable, "-m", "paycycle", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_cli_rejects_unknown_plan_and_negative_usage(project: config.Settings) -> None:
    from features.build import load_events

    subs = load_events(project.raw_dir, ["subscriptions"])["subscriptions"]
    customer = str(int(subs.loc[subs["status"] == "active", "customer_id"].iloc[0]))
    for args, field in (
        (("--plan-id", "9"), "plan_id"),
        (("--usage", "-5"), "usage_units"),
        (("--addons", "teleportation"), "addons"),
    ):
        done = _cli(project, "recommend", "--customer", customer, *args)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == EXIT_DATA, done.stderr
        assert len(lines) == 1 and lines[0].startswith(f"error: {field}: "), done.stderr
    done = _cli(project, "recommend", "--customer", "999999999")
    assert done.returncode == EXIT_DATA and "--customer" in done.stderr
