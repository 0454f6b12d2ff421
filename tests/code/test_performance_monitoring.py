"""Realized performance, the CBPE estimate, the realized-performance rule, `concept_shift`."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from monitoring.cbpe import estimate_performance, expected_roc_auc, fit_calibrator
from monitoring.decision import Thresholds, performance_drop
from monitoring.drift import write_index
from monitoring.outcomes import label_window
from monitoring.performance import (
    calibration_table,
    lift_top_decile,
    realized_metrics,
    summarise,
    write_performance,
)

THRESHOLDS = Thresholds(performance_auc_drop=0.05, performance_brier_rise=0.01)


def _scores(n: int = 4_000, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).beta(1.2, 14, n)


def _window(scores: np.ndarray, labels: np.ndarray, version: str = "3") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": np.arange(len(scores)),
            "churn_probability": scores,
            "model_version": version,
            "prediction_id": None,
            "churned": labels,
        }
    )


def test_expected_auc_is_the_mean_auc_of_labels_drawn_from_the_probabilities() -> None:
    s = _scores()
    rng = np.random.default_rng(1)
    draws = [roc_auc_score(rng.random(s.size) < s, s) for _ in range(300)]
    assert expected_roc_auc(s, s) == pytest.approx(np.mean(draws), abs=0.003)


def test_expected_auc_counts_ties_half_and_perfect_ranking_as_one() -> None:
    assert expected_roc_auc(np.full(50, 0.3), np.full(50, 0.3)) == pytest.approx(0.5)
    s = np.r_[np.zeros(10), np.ones(10)]
    assert expected_roc_auc(s, s) == pytest.approx(1.0)


def test_band_covers_the_realized_auc_and_brier_of_calibrated_scores() -> None:
    s = _scores()
    est = estimate_performance(s, draws=300, seed=2)
    assert est.brier == pytest.approx(np.mean(s * (1 - s)))
    rng = np.random.default_rng(3)
    inside_auc = inside_brier = 0
    for _ in range(100):
        y = (rng.random(s.size) < s).astype(float)
        inside_auc += est.roc_auc_low <= roc_auc_score(y, s) <= est.roc_auc_high
        inside_brier += est.brier_low <= np.mean((s - y) ** 2) <= est.brier_high
    assert inside_auc >= 88 and inside_brier >= 88  # a 95% band
    assert estimate_performance(s, draws=300, seed=2) == est  # seeded


def test_calibration_on_the_prior_window_corrects_an_overconfident_model() -> None:
    p = _scores(8_000, seed=4)
    rng = np.random.default_rng(5)
    raw = np.clip(p * 2.0, 0, 1)  # the model says twice the true probability
    y_prior = (rng.random(p.size) < p).astype(float)
    calibrated = fit_calibrator(raw, y_prior)(raw)
    y = (rng.random(p.size) < p).astype(float)
    naive = estimate_performance(raw, draws=50)
    fixed = estimate_performance(raw, calibrated, draws=50)
    realized = np.mean((raw - y) ** 2)
    assert abs(fixed.brier - realized) < 0.003 < abs(naive.brier - realized)


def test_realized_metrics_by_hand() -> None:
    y = np.array([0, 0, 0, 1, 0, 0, 0, 0, 1, 1], float)
    s = np.arange(10) / 10
    m = realized_metrics(y, s, bins=5)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, s))
    assert m["brier"] == pytest.approx(np.mean((s - y) ** 2))
    assert lift_top_decile(y, s) == pytest.approx(1 / 0.3)  # top 1 of 10 is positive
    table = calibration_table(y, s, bins=5)
    assert [row[4] for row in table] == [2] * 5 and table[-1][3] == 1.0
    assert table[0][:2] == [0.0, 0.1]
    assert realized_metrics(np.zeros(10), s) is None  # one class: undefined


def test_rule_fires_on_auc_fall_or_brier_rise_and_never_without_a_reference() -> None:
    ref = {"roc_auc": 0.75, "brier": 0.040}
    assert performance_drop(ref, {"roc_auc": 0.74, "brier": 0.045}, THRESHOLDS) == (False, [])
    fired, why = performance_drop(ref, {"roc_auc": 0.69, "brier": 0.041}, THRESHOLDS)
    assert fired and "ROC AUC fell 0.060" in why[0]
    fired, why = performance_drop(ref, {"roc_auc": 0.75, "brier": 0.055}, THRESHOLDS)
    assert fired and "Brier rose 0.0150" in why[0]
    assert performance_drop(None, {"roc_auc": 0.5, "brier": 0.2}, THRESHOLDS) == (False, [])


def test_summary_per_version_flags_a_concept_change_and_waits_for_labels() -> None:
    rng = np.random.default_rng(6)
    s = _scores(6_000, seed=7)
    prior = _window(s, (rng.random(s.size) < s).astype(float))
    same = _window(s, (rng.random(s.size) < s).astype(float))
    shifted = _window(s, (rng.random(s.size) < s + 0.04).astype(float))  # more leave, same x
    as_of = pd.Timestamp("2025-06-01")
    quiet = summarise(same, as_of, THRESHOLDS, prior)
    assert quiet["window"] == "2025-06" and quiet["as_of"] == "2025-06-01"
    v = quiet["model_versions"]["3"]
    assert v["rows"] == 6_000 and v["positives"] == int(same["churned"].sum())
    assert set(v["realized"]) == {"roc_auc", "pr_auc", "brier", "lift_top_decile", "calibration"}
    assert quiet["decision"] == {"realized_drift": False, "reasons": []}
    loud = summarise(shifted, as_of, THRESHOLDS, prior)
    assert loud["decision"]["realized_drift"]
    assert any(r.startswith("model version 3: Brier rose") for r in loud["decision"]["reasons"])
    # the label-free estimate cannot see it: its Brier is the prior month's
    est = loud["model_versions"]["3"]["estimated"]
    assert est["brier_high"] < loud["model_versions"]["3"]["realized"]["brier"]
    open_month = summarise(_window(s, np.full(s.size, np.nan)), as_of, THRESHOLDS, prior)
    v = open_month["model_versions"]["3"]
    assert v["realized"] is None and v["positives"] is None and v["estimated"]["roc_auc"] > 0.5
    assert not open_month["decision"]["realized_drift"]


def test_labels_wait_for_the_horizon_and_count_only_cancellations_inside_it() -> None:
    preds = _window(np.array([0.1, 0.2, 0.3]), np.full(3, np.nan))
    cancelled = pd.Series(pd.to_datetime(["2025-06-10", "2025-08-01", None]), index=[0, 1, 2])
    as_of = pd.Timestamp("2025-06-01")
    assert label_window(preds, cancelled, as_of, "2025-06-20")["churned"].isna().all()
    got = label_window(preds, cancelled, as_of, dt.date(2025, 7, 2))["churned"].tolist()
    assert got == [1.0, 0.0, 0.0]


def test_performance_json_sits_beside_its_report_and_feeds_the_index(tmp_path: Path) -> None:
    folder = tmp_path / "drift" / "2025-07-01"
    folder.mkdir(parents=True)
    report = folder / "concept_shift-080000.json"
    report.write_text(json.dumps({"name": "concept_shift-080000", "drift": False, "share": 0.0}))
    s = _scores(500)
    single = _window(s, np.zeros(s.size))  # one class: realized metrics undefined
    summary = summarise(single, pd.Timestamp("2025-06-01"), THRESHOLDS)
    path = write_performance(summary, report)
    assert path == folder / "concept_shift-080000.performance.json"
    assert json.loads(path.read_text())["model_versions"]["3"]["realized"] is None
    rng = np.random.default_rng(8)
    labelled = summarise(
        _window(s, (rng.random(s.size) < s).astype(float)), "2025-06-01", THRESHOLDS
    )
    write_performance(labelled, report)
    page = write_index(tmp_path).read_text()
    assert page.count("<tr class=") == 1  # the performance file is not a report of its own
    realized = labelled["model_versions"]["3"]["realized"]["roc_auc"]
    assert f"v3: {realized:.3f}" in page and "2025-06" in page


def test_concept_shift_keeps_inputs_and_changes_only_who_leaves() -> None:
    from features.build import build_features, build_labels
    from monitoring.windows import simulate_events
    from paycycle.calendar import month_starts
    from paycycle.sim.simulator import SimSpec

    specs = [
        SimSpec(customers=3_000, months=4, seed=11, scenario=s)
        for s in ("baseline", "concept_shift")
    ]
    base, shift = (simulate_events(spec) for spec in specs)
    as_of = month_starts(specs[0].start_date, 4)[3]  # the shift month
    pd.testing.assert_frame_equal(build_features(base, as_of), build_features(shift, as_of))
    assert build_labels(shift, as_of).mean() > 1.3 * build_labels(base, as_of).mean()


def test_store_window_joins_batch_and_served_predictions_to_cancellations(project) -> None:
    """Batch scores and served predictions of known customers, labelled from the store; served
    rows of unknown customers, of another month, or already batch-scored are left out."""
    from features.build import build_labels
    from inference.score_io import upsert_scores
    from monitoring.outcomes import store_window
    from paycycle.loader import load_raw
    from paycycle.store import make_engine, upgrade
    from paycycle.tables import read_table

    as_of = dt.date(2025, 6, 1)
    events = {t: read_table(project.raw_dir, t) for t in ("customers", "subscriptions")}
    labels = build_labels(events, as_of)
    a, b, c = [int(labels[labels == 1].index[0]), *map(int, labels[labels == 0].index[:2])]
    upgrade(project)
    engine = make_engine(project.db_url)
    load_raw(engine, project.raw_dir)
    batch = pd.DataFrame(
        {
            "customer_id": [a, b],
            "as_of": as_of,
            "churn_probability": [0.1, 0.2],
            "recommendations": None,
            "churn_model_version": "4",
            "recommender_model_version": None,
            "prediction_id": ["a" * 32, "b" * 32],
        }
    )
    upsert_scores(engine, batch, Path("part-00000.parquet"))
    requests = project.path(project.params.drift.requests_dir)
    day = requests / "date=2025-06-10"
    day.mkdir(parents=True)
    logged = pd.to_datetime(["2025-06-10", "2025-06-10", "2025-06-10", "2025-07-02"], utc=True)
    pd.DataFrame(
        {
            "customer_id": [str(b), str(c), "99999999", str(c)],
            "churn_probability": [0.9, 0.3, 0.5, 0.6],
            "model_version": "5",
            "prediction_id": ["c" * 32, "d" * 32, "e" * 32, "f" * 32],
            "logged_at": logged,
        }
    ).to_parquet(day / "requests-0.parquet")
    got = store_window(engine, as_of, requests, known_until=dt.date(2025, 8, 1))
    still_open = store_window(engine, as_of, requests, known_until=dt.date(2025, 6, 20))
    engine.dispose()
    assert got["customer_id"].tolist() == [a, b, c]
    assert got["model_version"].tolist() == ["4", "4", "5"]
    assert got["prediction_id"].tolist() == ["a" * 32, "b" * 32, "d" * 32]
    assert got["churned"].tolist() == [1.0, 0.0, 0.0]
    assert still_open["churned"].isna().all()


def test_band_is_widened_by_the_estimators_error_on_the_labelled_month() -> None:
    """A model whose scores are half the true risk: label noise alone gives a narrow band that
    misses the realized AUC; the error seen on the prior (labelled) month widens it."""
    from monitoring.cbpe import estimate_performance, observed_error, widen

    rng = np.random.default_rng(7)
    true_p = rng.beta(1, 8, 20_000)
    scores = true_p * 0.5
    labels = (rng.random(true_p.size) < true_p).astype(float)
    auc_err, brier_err = observed_error(scores, labels, lambda s: s)  # taken as calibrated
    assert auc_err > 0.0 and brier_err > 0.005
    plain = estimate_performance(scores, seed=1)
    wide = widen(plain, auc_err, brier_err)
    assert wide.roc_auc == plain.roc_auc and wide.brier == plain.brier  # the point stays
    assert wide.roc_auc_low == max(0.0, plain.roc_auc_low - auc_err)
    assert wide.brier_high - wide.brier_low > plain.brier_high - plain.brier_low
    realized_brier = float(np.mean((scores - labels) ** 2))
    assert not plain.brier_low <= realized_brier <= plain.brier_high
    assert wide.brier_low <= realized_brier <= wide.brier_high
