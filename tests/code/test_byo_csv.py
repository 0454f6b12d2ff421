"""Bring-your-own churn CSV: type inference, blanks, text numbers, yes/no targets, clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from paycycle.errors import EXIT_DATA, DataError
from training.churn.byo import read_churn_csv


def write_csv(path: Path, n: int = 400, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 60, n)
    fails = rng.poisson(0.5, n)
    spend = rng.gamma(2, 600, n)
    plan = rng.choice(["basic", "pro", "team"], n)
    logit = -2 - 0.04 * tenure + 0.9 * fails + (plan == "basic") * 0.8
    churn = rng.random(n) < 1 / (1 + np.exp(-logit))
    lines = ["id,tenure_months,failed,monthly_spend,plan,Churn"]
    for i in range(n):
        ten = "" if i == 3 else str(tenure[i])  # a blank numeric cell
        spend_txt = f'"{spend[i]:,.2f}"'  # text number with thousands separator and quotes
        lines.append(
            f"C{i:04d},{ten},{fails[i]},{spend_txt},{plan[i]},{'Yes' if churn[i] else 'No'}"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


def test_inference_report(tmp_path: Path) -> None:
    frame, spec, report = read_churn_csv(write_csv(tmp_path / "t.csv"), "Churn", "id")
    assert set(spec.numeric) == {"tenure_months", "failed", "monthly_spend"}
    assert spec.categorical == ("plan",)
    assert report.converted_text_numbers == ["monthly_spend"]
    assert report.blank_cells == {"tenure_months": 1}
    assert report.target_mapping == {"No": 0, "Yes": 1}
    assert np.isnan(frame.loc[3, "tenure_months"])
    assert frame["monthly_spend"].dtype == np.float64 and frame["monthly_spend"].min() > 0
    assert set(frame["churned"].unique()) == {0, 1}
    assert "id" not in frame.columns and frame["customer_id"].iloc[0] == "C0000"
    assert any("blank" in line for line in report.lines())


def test_missing_target_names_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="^cancelled: target column not found in t.csv"):
        read_churn_csv(write_csv(tmp_path / "t.csv"), "cancelled")


def test_unusable_target_values_are_named(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("a,churn\n1,yes\n2,maybe\n3,no\n")
    with pytest.raises(DataError, match="churn: target must be .*'maybe'"):
        read_churn_csv(path, "churn")


def test_cli_missing_target_is_one_line_data_error(tmp_path: Path) -> None:
    csv = write_csv(tmp_path / "t.csv", n=20)
    proc = subprocess.run(
        [sys.executable, "-m", "paycycle", "train", "churn", "--csv", str(csv), "--target", "gone"],
        capture_output=True,
        text=True,
        env={"PAYCYCLE_ROOT": str(tmp_path), "PATH": "/usr/bin:/bin"},
    )
    assert proc.returncode == EXIT_DATA, proc.stderr
    lines = [x for x in proc.stderr.strip().splitlines() if x.strip()]
    assert lines[-1].startswith("error: gone: target column not found"), proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_byo_trains_and_reports_auc(tmp_path: Path) -> None:
    from paycycle import config
    from training.churn.pipeline import train_byo

    settings = config.load(root=tmp_path, mlflow_tracking_uri=f"sqlite:///{tmp_path}/mlruns.db")
    params = settings.params.churn.model_copy(update={"epochs": 10, "hidden_units": (16,)})
    result, report = train_byo(settings, write_csv(tmp_path / "t.csv", n=1500), "Churn", "id",
                               params)  # fmt: skip
    assert result.version is None  # BYO runs are logged, not registered
    assert 0.6 < result.metrics["auc"] <= 1.0
    assert report.rows == 1500
