"""One truth: the Evidently report's per-column drift flags are the verdict's (issue 17, item 5)."""

from __future__ import annotations

import numpy as np
import pytest

from monitoring.decision import Thresholds, univariate_importance
from monitoring.drift import drift_report
from monitoring.windows import scenario_windows
from paycycle import config
from paycycle.sim.simulator import SimSpec

CUSTOMERS, MONTHS, SEED = 3_000, 6, 2025  # not a tuning (0-29) or reported (1000-1029) seed


def _scores(frame) -> np.ndarray:
    """A stand-in score that moves with usage (so usage_drop also moves the predictions)."""
    usage = frame["usage_pattern"].to_numpy(float)
    return 1.0 / (1.0 + np.exp((usage - np.median(usage)) / (usage.std() or 1.0)))


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory):
    ref, cur = scenario_windows(SimSpec(CUSTOMERS, MONTHS, SEED, scenario="usage_drop"))
    ref_p, cur_p = _scores(ref.frame), _scores(cur.frame)
    realized = (np.random.default_rng(7).uniform(size=cur_p.size) < cur_p).astype(float)
    return drift_report(
        ref.frame,
        cur.frame,
        predictions=(ref_p, cur_p),
        labels=(ref.labels.to_numpy(float), realized),
        out_dir=tmp_path_factory.mktemp("reports"),
        name="usage_drop",
        thresholds=Thresholds.from_params(config.load().params.drift),
        importance=univariate_importance(ref.frame, ref.labels),
        sample_rows=800,  # the report sees a sample; the flags must still be the full window's
    )


def test_evidently_flags_equal_the_verdicts(result) -> None:
    ours = {f["column"]: bool(f["drifted"]) for f in result.decision.features}
    theirs = {c: v["drifted"] for c, v in result.evidently["columns"].items()}
    assert any(ours.values()) and not all(ours.values())  # some columns drift, others do not
    assert {c: theirs[c] for c in ours} == ours
    assert result.evidently["drifted_columns"] == sum(ours.values())
    assert result.evidently["dataset_drift"] == result.decision.data_drift  # the headline too
    for column, entry in result.evidently["columns"].items():
        assert entry["method"].startswith("paycycle"), column
    thresholds = {f["column"]: f["threshold"] for f in result.decision.features}
    assert {c: result.evidently["columns"][c]["threshold"] for c in ours} == thresholds


def test_prediction_drift_and_realized_quality_in_the_report(result) -> None:
    assert result.evidently["columns"]["prediction"]["drifted"] == result.decision.prediction_drift
    assert result.evidently["columns"]["prediction"]["score"] == pytest.approx(
        result.decision.prediction["psi"]
    )
    quality = result.evidently["classification"]
    assert 0.5 < quality["RocAuc"] <= 1.0 and 0.0 < quality["Recall"] <= 1.0
    page = result.html_path.read_text()
    assert "PayCycle rule" in page
