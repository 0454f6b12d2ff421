"""The drift rule on hand-made statistics and small synthetic frames."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features import schema
from monitoring import stats
from monitoring.decision import (
    Quality,
    Thresholds,
    decide,
    detect_drift,
    expected_calibration_error,
    weights,
)
from paycycle import config

TH = Thresholds(wasserstein_threshold=0.06, psi_threshold=0.005, alpha=0.01, share_threshold=0.1)


def _table(drifted: dict[str, bool], weight: dict[str, float] | None = None) -> pd.DataFrame:
    cols = list(drifted)
    w = weights(cols, weight, 1.0 if weight else 0.0)
    return pd.DataFrame({"column": cols, "drifted": [drifted[c] for c in cols], "weight": w})


def test_share_counts_only_drifted_features() -> None:
    d = decide(_table({f"f{i}": i == 0 for i in range(10)}), TH)
    assert d.share == pytest.approx(0.1)
    assert d.drift and d.data_drift and "f0" in d.reasons[0]


def test_below_share_threshold_is_no_drift() -> None:
    d = decide(_table({f"f{i}": i == 0 for i in range(20)}), TH)
    assert d.share == pytest.approx(0.05)
    assert not d.drift and d.reasons == []


def test_importance_weights_one_important_feature_above_many_minor() -> None:
    imp = {"key": 10.0, **{f"m{i}": 0.1 for i in range(19)}}
    important = decide(_table({"key": True, **{f"m{i}": False for i in range(19)}}, imp), TH)
    minor = decide(_table({"key": False, **{f"m{i}": i < 2 for i in range(19)}}, imp), TH)
    assert important.drift and not minor.drift


@pytest.mark.parametrize("mix", [0.0, 0.3, 1.0])
def test_weights_sum_to_one(mix: float) -> None:
    w = weights(["a", "b", "c"], {"a": 3, "b": 1, "c": 0}, mix)
    assert w.sum() == pytest.approx(1.0)
    assert (w >= 0).all()


def test_prediction_drift_alone_flags() -> None:
    pred = stats.ColumnDrift("prediction", "numeric", "wasserstein", 0.5, 0.3, 1e-9, 10, 1000, 1000)
    d = decide(_table({"a": False, "b": False}), TH, prediction=pred)
    assert d.drift and d.prediction_drift and not d.data_drift


def test_quality_drop_alone_flags_and_small_change_does_not() -> None:
    table = _table({"a": False})
    drop = decide(table, TH, quality=(Quality(0.80, 0.02, 1000), Quality(0.74, 0.02, 1000)))
    same = decide(table, TH, quality=(Quality(0.80, 0.02, 1000), Quality(0.79, 0.03, 1000)))
    assert drop.drift and drop.quality_drop
    assert not same.drift and same.quality_drop is False


def test_calibration_error() -> None:
    y = np.array([0, 0, 1, 1] * 250)
    assert expected_calibration_error(y, np.full(1000, 0.5)) == pytest.approx(0.0)
    assert expected_calibration_error(y, np.full(1000, 0.9)) == pytest.approx(0.4)


def test_psi_and_g_test_basics() -> None:
    same = np.array([500, 300, 200])
    assert stats.psi(same, same) == pytest.approx(0.0)
    assert stats.g_test(same, same) == pytest.approx(1.0)
    moved = np.array([300, 300, 400])
    assert stats.psi(same, moved) > 0.1 and stats.g_test(same, moved) < 1e-6


def test_lattice_change_is_not_drift() -> None:
    """30-day vs 31-day months put active_share on different grids: not a distribution change."""
    rng = np.random.default_rng(0)
    p = rng.beta(5, 2, 20_000)
    ref = pd.Series(rng.binomial(31, p) / 31, name="active_share")
    cur = pd.Series(rng.binomial(30, p) / 30, name="active_share")
    col = stats.column_drift(ref, cur, "numeric")
    assert col.measure == "wasserstein" and col.effect < TH.wasserstein_threshold


def _frame(n: int, rng: np.random.Generator, usage_scale: float = 1.0) -> pd.DataFrame:
    df = pd.DataFrame({c: np.full(n, schema.BY_NAME[c].default) for c in schema.COLUMNS})
    df["usage_pattern"] = rng.lognormal(4, 0.5, n) * usage_scale
    df["subscription_duration"] = rng.gamma(2, 6, n)
    df["failed_payments"] = rng.poisson(0.2, n).astype(float)
    df["segment"] = rng.choice(["consumer", "smb", "midmarket"], n)
    return df


def test_detect_drift_flags_a_shift_and_not_a_resample() -> None:
    rng = np.random.default_rng(1)
    ref = _frame(5_000, rng)
    imp = {"usage_pattern": 1.0, "failed_payments": 1.0}
    same = detect_drift(ref, _frame(5_000, rng), TH, imp)
    moved = detect_drift(ref, _frame(5_000, rng, usage_scale=0.6), TH, imp)
    unweighted = detect_drift(ref, _frame(5_000, rng, usage_scale=0.6), TH)
    assert not same.drift
    assert moved.drift and "usage_pattern" in moved.reasons[0]
    assert not unweighted.drift  # one feature of 22 is below the share without importance


def test_thresholds_from_params_match_yaml() -> None:
    th = Thresholds.from_params(config.load().params.drift)
    assert th.share_threshold == config.load().params.drift.share_threshold
    assert th.for_feature("usage_pattern", "wasserstein") == th.wasserstein_threshold
