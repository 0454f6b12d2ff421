"""Drift reports end to end on simulated windows: verdicts, files, index, headless Chromium."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from monitoring.decision import Thresholds, univariate_importance
from monitoring.drift import drift_report, stratified_sample
from monitoring.windows import scenario_windows
from paycycle import config
from paycycle.sim.simulator import SimSpec

CUSTOMERS, MONTHS, SEED = 4_000, 6, 2024  # not a tuning (0-29) or reported (1000-1029) seed


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    out = tmp_path_factory.mktemp("reports")
    th = Thresholds.from_params(config.load().params.drift)
    results = {}
    for scenario in ("usage_drop", "baseline"):
        ref, cur = scenario_windows(SimSpec(CUSTOMERS, MONTHS, SEED, scenario=scenario))
        results[scenario] = drift_report(
            ref.frame,
            cur.frame,
            out_dir=out,
            name=scenario,
            thresholds=th,
            importance=univariate_importance(ref.frame, ref.labels),
            sample_rows=2_000,
        )
    return {"dir": out, **results}


def test_usage_drop_is_flagged_baseline_is_not(reports: dict) -> None:
    drop, base = reports["usage_drop"], reports["baseline"]
    assert drop.drift and not base.drift
    drifted = {f["column"] for f in drop.decision.features if f["drifted"]}
    assert {"usage_pattern", "plan_fit"} <= drifted


def test_html_json_and_index_written(reports: dict) -> None:
    for scenario in ("usage_drop", "baseline"):
        r = reports[scenario]
        assert r.html_path.stat().st_size > 10_000
        summary = json.loads(r.json_path.read_text())
        assert summary["drift"] == r.drift and summary["name"] == scenario
        assert summary["evidently"]["columns"]["usage_pattern"]["score"] is not None
        assert summary["report_rows"]["current"] <= 2_000
    index = (reports["dir"] / "index.html").read_text()
    assert "usage_drop" in index and "baseline" in index
    assert index.count("DRIFT") == 1 and index.count("no drift") == 1


def test_stratified_sample_keeps_small_strata(reports: dict) -> None:
    ref, _ = scenario_windows(SimSpec(2_000, 4, 1))
    sample = stratified_sample(ref.frame, 200)
    assert abs(len(sample) - 200) <= 30
    assert set(sample["segment"]) == set(ref.frame["segment"])


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
@pytest.mark.timeout(180)
def test_index_and_report_render_in_headless_chromium(reports: dict) -> None:
    shots = Path(reports["dir"]) / "screenshots"
    shots.mkdir(exist_ok=True)
    for page in (reports["dir"] / "index.html", reports["usage_drop"].html_path):
        png = shots / f"{page.stem}.png"
        subprocess.run(
            [
                "chromium",
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--window-size=1400,1000",
                "--virtual-time-budget=10000",
                f"--screenshot={png}",
                page.as_uri(),
            ],
            check=True,
            capture_output=True,
            timeout=150,
        )
        assert png.stat().st_size > 5_000
