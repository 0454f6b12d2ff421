"""Evaluation metrics on arrays with known answers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from paycycle.errors import DataError
from training.churn.evaluate import (
    calibration_table,
    evaluate_churn,
    expected_calibration_error,
    lift_at,
    save_plots,
)


@pytest.fixture()
def calibrated() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    p = rng.beta(1, 12, 40_000)
    return (rng.random(p.size) < p).astype(int), p


def test_perfect_ranking_has_auc_one_and_max_lift() -> None:
    y = np.array([0] * 90 + [1] * 10)
    p = np.linspace(0, 1, 100)
    m = evaluate_churn(y, p)
    assert m["auc"] == 1.0 and m["pr_auc"] == pytest.approx(1.0)
    assert m["lift_top_decile"] == pytest.approx(10.0)


def test_calibrated_scores_have_small_ece_and_shifted_ones_do_not(calibrated) -> None:
    y, p = calibrated
    assert expected_calibration_error(y, p) < 0.005
    assert expected_calibration_error(y, np.clip(p * 2, 0, 1)) > 0.05
    pred, obs, counts = calibration_table(y, p, 10)
    assert len(pred) == 10 and counts.sum() == len(y)
    np.testing.assert_allclose(pred, obs, atol=0.01)


def test_oracle_ratio_is_model_auc_over_oracle_auc(calibrated) -> None:
    y, oracle = calibrated
    noisy = np.clip(oracle + np.random.default_rng(1).normal(0, 0.05, oracle.size), 0, 1)
    m = evaluate_churn(y, noisy, oracle)
    assert m["oracle_auc_ratio"] == pytest.approx(m["auc"] / m["oracle_auc"])
    assert 0.5 < m["oracle_auc_ratio"] < 1.0
    assert evaluate_churn(y, oracle, oracle)["oracle_auc_ratio"] == pytest.approx(1.0)
    assert m["oracle_brier"] < m["brier"]


@pytest.mark.parametrize("fraction,expected", [(0.1, 10 / 3), (1.0, 1.0)])
def test_lift(fraction: float, expected: float) -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0] * 3)
    p = np.array([9, 8, 7, 1, 1, 1, 1, 1, 1, 1] * 3, dtype=float)
    assert lift_at(y, p, fraction) == pytest.approx(expected)


@pytest.mark.parametrize("y,p", [([0, 0, 0], [0.1, 0.2, 0.3]), ([0, 1], [0.5])])
def test_bad_input_is_a_data_error(y, p) -> None:
    with pytest.raises(DataError):
        evaluate_churn(np.array(y), np.array(p))


def test_plots_are_png_files(tmp_path: Path, calibrated) -> None:
    y, p = calibrated
    paths = save_plots(y[:2000], p[:2000], tmp_path, oracle_p=p[:2000])
    assert [x.name for x in paths] == ["calibration.png", "roc.png", "lift.png"]
    for x in paths:
        assert x.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
