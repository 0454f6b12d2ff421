"""The Evidently stattests apply our rule, on given data or on the verdict's figures."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from monitoring import report_rule, stats


@pytest.mark.parametrize("shift", [0.0, 0.5])
def test_feature_rule_on_data_is_the_decision_rule(shift: float) -> None:
    rng = np.random.default_rng(3)
    ref = pd.Series(rng.normal(size=4_000), name="usage_pattern")
    cur = pd.Series(rng.normal(shift, 1.0, size=4_000), name="usage_pattern")
    drift = stats.column_drift(ref, cur, "numeric")
    score, drifted = report_rule.feature_rule(ref, cur, "num", 0.06)
    assert score == pytest.approx(drift.effect)
    assert drifted == (drift.effect >= 0.06 and drift.p_value < 0.001) == (shift > 0)


def test_verdict_figures_win_over_the_sample_inside_the_block() -> None:
    ref = pd.Series(np.zeros(50), name="plan_tier")
    figures = report_rule.RuleFigures(
        alpha=0.01, features={"plan_tier": (0.2, 0.001)}, prediction=(0.05, 0.5)
    )
    with report_rule.verdict_figures(figures):
        assert report_rule.feature_rule(ref, ref, "cat", 0.1) == (0.2, True)
        assert report_rule.feature_rule(ref, ref, "cat", 0.3) == (0.2, False)
        assert report_rule.prediction_rule(ref, ref, "num", 0.1) == (0.05, False)
    assert report_rule.feature_rule(ref, ref, "cat", 0.1)[1] is False  # outside: on the data


@pytest.mark.parametrize(("data_drift", "drifted"), [(False, 1), (True, 1), (False, 0), (True, 3)])
def test_evidently_headline_share_agrees_with_the_weighted_verdict(
    data_drift: bool, drifted: int
) -> None:
    """Evidently says dataset drift when drifted/n >= drift_share: that must equal our verdict,
    e.g. one unimportant column of 22 (4.5% > share_threshold 4%) is no drift once weighted."""
    from monitoring.decision import Decision
    from monitoring.drift import _headline_share

    columns = [f"c{i}" for i in range(22)]
    features = [{"column": c, "drifted": i < drifted} for i, c in enumerate(columns)]
    decision = Decision(data_drift, 0.0, data_drift, None, None, [], features)
    share = _headline_share(decision, columns)
    assert (drifted / len(columns) >= share) == data_drift
