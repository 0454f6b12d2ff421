"""Bring-your-own churn CSV: type inference, blanks, text numbers, yes/no targets, clear errors."""

from __future__ import annotations

import re
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


def write_rows(path: Path, header: str, cell, n: int = 60) -> Path:
    """A small CSV: `header`, then `n` rows `cell(i)` plus a churn column alternating yes/no."""
    rows = [header] + [f"{cell(i)},{'yes' if i % 3 == 0 else 'no'}" for i in range(n)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("bad", ["inf", "-inf", "Infinity", "1e999", "-1e999", '"1,0e999"'])
def test_non_finite_number_is_named_with_its_row(tmp_path: Path, bad: str) -> None:
    """Attack: a numeric column with one infinite or overflowing cell (pandas reads `1e999` as
    NaN, Keras normalisation turns `inf` into NaN weights). Safe: one error naming column + row."""
    path = write_rows(tmp_path / "t.csv", "tenure,spend,churn",
                      lambda i: f"{i},{bad if i == 5 else i * 1.5}")  # fmt: skip
    with pytest.raises(DataError, match=r"^spend: 1 non-finite number\(s\) .* row\(s\) 7 "):
        read_churn_csv(path, "churn")


def test_inf_in_a_text_column_is_just_a_category(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "t.csv", "tenure,plan,churn",
                      lambda i: f"{i},{['inf', 'basic', 'pro'][i % 3]}")  # fmt: skip
    _, spec, _ = read_churn_csv(path, "churn")
    assert spec.categorical == ("plan",) and "inf" in spec.vocabulary["plan"]


@pytest.mark.parametrize("header", ["tenure, tenure ,churn", "tenure,tenure,churn",
                                    "tenure,\ttenure,churn"])  # fmt: skip
def test_headers_colliding_after_trimming_are_named(tmp_path: Path, header: str) -> None:
    """Attack: two columns whose names are equal once trimmed (pandas would silently rename the
    second `tenure.1`, or the frame gets two `tenure` columns and training crashes)."""
    path = write_rows(tmp_path / "t.csv", header, lambda i: f"{i},{i % 7}")
    expected = r"^tenure: header appears twice in t.csv \(columns 1 and 2"
    with pytest.raises(DataError, match=expected):
        read_churn_csv(path, "churn")


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("spend/month", "spend_month"), ("monthly spend", "monthly_spend"), ("2fa", "f_2fa"),
     ("spend-usd", "spend_usd"), ("preço", "pre_o"), ("a.b", "a_b")],
)  # fmt: skip
def test_unsafe_feature_names_are_named(tmp_path: Path, name: str, suggestion: str) -> None:
    """Attack: headers with `/`, spaces or symbols (Keras refuses `/` in a layer name, the
    SavedModel signature refuses spaces: both used to crash deep inside training)."""
    path = write_rows(tmp_path / "t.csv", f"tenure,{name},churn", lambda i: f"{i},{i * 1.5}")
    expected = rf"^{re.escape(name)}: column name must be .*{suggestion}$"
    with pytest.raises(DataError, match=expected):
        read_churn_csv(path, "churn")


def test_reserved_feature_name_is_refused(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "t.csv", "tenure,churned,churn", lambda i: f"{i},{i % 2}")
    with pytest.raises(DataError, match="^churned: reserved column name"):
        read_churn_csv(path, "churn")


def test_target_and_id_may_have_any_name(tmp_path: Path) -> None:
    """Only feature names become layer names: the target and id columns are free-form."""
    path = write_rows(tmp_path / "t.csv", "customer no/id,tenure,Churn Status",
                      lambda i: f"C {i},{i}")  # fmt: skip
    frame, spec, _ = read_churn_csv(path, "Churn Status", "customer no/id")
    assert spec.numeric == ("tenure",) and frame["customer_id"].iloc[1] == "C 1"


def test_blank_header_of_an_empty_column_is_dropped(tmp_path: Path) -> None:
    """A trailing comma on every line (spreadsheet exports) is not an error."""
    path = tmp_path / "t.csv"
    rows = ["tenure,churn,"] + [f"{i},{'yes' if i % 3 == 0 else 'no'}," for i in range(30)]
    path.write_text("\n".join(rows) + "\n")
    _, spec, report = read_churn_csv(path, "churn")
    assert spec.numeric == ("tenure",) and report.dropped == {"column 3": "blank header, no values"}


def test_blank_header_with_values_is_named_by_position(tmp_path: Path) -> None:
    path = write_rows(tmp_path / "t.csv", "tenure, ,churn", lambda i: f"{i},{i * 2}")
    with pytest.raises(DataError, match="^column 2 of t.csv: has values but a blank header"):
        read_churn_csv(path, "churn")


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
