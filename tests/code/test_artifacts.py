"""Reviewer artifacts and the index's trend charts, from report-folder files (issue 17, item 6)."""

from __future__ import annotations

import json
import re
from pathlib import Path

from monitoring.artifacts import artifact_key, monitoring_artifact, promotion_artifact
from monitoring.index_page import (
    drift_share_chart,
    read_summaries,
    window_performance,
    write_index,
)
from tests.monitoring_files import performance, write_window


def test_monitoring_artifact_shows_verdict_reasons_and_both_metrics(tmp_path: Path) -> None:
    report = write_window(tmp_path, "2026-05-01", 0.12, performance("2026-04", 0.62, 0.74))
    summary = {"verdict": "DRIFT", "reasons": ["usage moved"], "share": 0.12, "json": str(report)}
    content = monitoring_artifact(summary, window_performance(report))
    assert content.key == "monitoring-daily"
    assert "**DRIFT**" in content.markdown and "usage moved" in content.markdown
    assert "realized performance: AUC fell 0.080" in content.markdown
    (row,) = content.table
    assert row["model_version"] == "3" and row["realized_auc"] == "0.620"
    assert row["estimated_auc"] == "0.740" and row["estimated_auc_band"] == "0.720–0.760"
    assert row["window"] == "2026-04" and row["verdict"] == "DRIFT"


def test_monitoring_artifact_without_performance_says_so(tmp_path: Path) -> None:
    report = write_window(tmp_path, "2026-05-01", 0.01)
    assert window_performance(report) is None
    content = monitoring_artifact({"verdict": "no drift", "json": str(report)}, None)
    assert content.table[0]["note"] == "no performance file yet"
    assert "nothing moved" in content.markdown


def test_promotion_artifact_lists_challenger_against_champion() -> None:
    decision = {
        "action": "refused",
        "version": "7",
        "previous": "5",
        "reason": "auc 0.801 does not beat champion 0.812 by 0.005",
        "metrics": {"auc": 0.801, "brier": 0.07},
        "champion_metrics": {"auc": 0.812},
    }
    content = promotion_artifact(decision)
    assert content.key == "promotion-churn" and "**refused** version 7" in content.markdown
    rows = {r["metric"]: r for r in content.table}
    assert rows["auc"]["champion"] == "0.8120" and rows["brier"]["champion"] == "—"


def test_artifact_keys_are_prefect_safe() -> None:
    assert re.fullmatch(r"[a-z0-9-]+", artifact_key("monitoring", "Usage_Drop 2026/05"))


def test_runs_of_one_report_form_one_series_newest_wins(tmp_path: Path) -> None:
    write_window(tmp_path, "2026-03-01", 0.01, name="daily-060000")
    write_window(tmp_path, "2026-03-01", 0.03, name="daily-070000")  # same window, rerun
    write_window(tmp_path, "2026-04-01", 0.02, name="daily-060000")
    page = write_index(tmp_path).read_text()
    assert page.count('class="series"') == 1 and 'data-series="daily"' in page
    assert monitoring_artifact({"json": "x/daily-070000.json"}).key == "monitoring-daily"
    chart = drift_share_chart(read_summaries(tmp_path))
    assert chart.count("<circle") == 2


def test_index_has_trend_charts_only_with_data(tmp_path: Path) -> None:
    write_window(tmp_path, "2026-03-01", 0.01)
    page = write_index(tmp_path).read_text()
    assert page.count('class="series"') == 1  # drift share; no AUC chart without performance
    write_window(tmp_path, "2026-04-01", 0.02, performance("2026-03", 0.80, 0.79))
    page = write_index(tmp_path).read_text()
    assert "estimated vs realized" in page and 'class="band"' in page
    assert page.count("DRIFT") == 0 and "<script" not in page  # self-contained, no verdict noise


def test_corrupt_or_partial_performance_files_do_not_break_the_page(tmp_path: Path) -> None:
    report = write_window(tmp_path, "2026-03-01", 0.01)
    (report.parent / "performance.json").write_text("{not json")  # a half-written file
    assert window_performance(report) is None
    assert "estimated vs realized" not in write_index(tmp_path).read_text()
    early = performance("2026-03", 0.8, 0.79)
    early["model_versions"]["3"]["realized"] = None  # labels not in yet: estimate only
    write_window(tmp_path, "2026-04-01", 0.02, early)
    page = write_index(tmp_path).read_text()
    assert 'data-series="v3 estimated"' in page and "v3 realized" not in page
    row = monitoring_artifact({"json": "x/daily.json"}, early).table[0]
    assert row["realized_auc"] == "—" and row["note"] == "labels not in yet"


def test_a_reports_own_performance_file_is_read_first(tmp_path: Path) -> None:
    report = write_window(tmp_path, "2026-05-01", 0.01, performance("2026-04", 0.70, 0.71))
    own = report.with_name(f"{report.stem}.performance.json")
    own.write_text(json.dumps(performance("2026-04", 0.90, 0.91)))
    assert window_performance(report)["model_versions"]["3"]["realized"]["roc_auc"] == 0.90
    assert [s["name"] for _, s in read_summaries(tmp_path)] == ["daily"]  # not a drift summary
