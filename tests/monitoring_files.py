"""Report-folder files for index and artifact tests: drift summaries (the fields the index reads)
and per-window `performance.json` in the shape the performance monitor writes (issue 17)."""

from __future__ import annotations

import json
from pathlib import Path


def performance(window: str, auc: float, estimated: float, version: str = "3") -> dict:
    """One window's performance file for one model version."""
    return {
        "window": window,
        "as_of": f"{window}-01",
        "model_versions": {
            version: {
                "rows": 2000,
                "positives": 140,
                "realized": {
                    "roc_auc": auc,
                    "pr_auc": 0.31,
                    "brier": 0.061,
                    "lift_top_decile": 3.1,
                    "calibration": [[0.0, 0.1, 0.05, 0.048, 1200]],
                },
                "estimated": {
                    "roc_auc": estimated,
                    "roc_auc_low": estimated - 0.02,
                    "roc_auc_high": estimated + 0.02,
                    "brier": 0.06,
                    "brier_low": 0.055,
                    "brier_high": 0.065,
                },
            }
        },
        "decision": {
            "realized_drift": auc < 0.7,
            "reasons": ["AUC fell 0.080"] if auc < 0.7 else [],
        },
    }


def write_window(
    reports_dir: Path, date: str, share: float, perf: dict | None = None, name: str = "daily"
) -> Path:
    """A drift summary for `date` (and its performance file); returns the summary's path."""
    folder = reports_dir / "drift" / date
    folder.mkdir(parents=True, exist_ok=True)
    summary = {
        "name": name,
        "date": date,
        "current_as_of": date,
        "drift": share >= 0.04,
        "verdict": "DRIFT" if share >= 0.04 else "no drift",
        "share": share,
        "reasons": [f"weighted share of drifted features {share:.3f} >= 0.04"]
        if share >= 0.04
        else [],
        "rows": {"reference": 2000, "current": 2000},
        "thresholds": {"share_threshold": 0.04},
        "html": f"{name}.html",
    }
    path = folder / f"{name}.json"
    path.write_text(json.dumps(summary))
    if perf is not None:
        (folder / "performance.json").write_text(json.dumps(perf))
    return path
