"""Great Expectations suites: good data passes, corrupted data fails loudly and stops the flow."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.validation import (
    DOCS_DIR,
    validate_features,
    validate_path,
    validate_raw,
    with_checks,
)
from paycycle import config
from paycycle.errors import DataError

ORPHANS = 3
NEGATIVE = 4
NULL_IDS = 2


def _rewrite(raw: Path, table: str, change) -> None:
    """Apply `change(df)` to the first part of a raw table."""
    part = sorted((raw / table).glob("part-*.parquet"))[0]
    df = pd.read_parquet(part)
    change(df)
    df.to_parquet(part, index=False)


def _corrupt(raw: Path) -> dict[str, list]:
    """Negative payment amounts, null customer ids, subscriptions of unknown customers."""
    orphan_ids = [10**9 + i for i in range(ORPHANS)]

    def payments(df: pd.DataFrame) -> None:
        df.loc[df.index[:NEGATIVE], "amount"] = -12.5

    def customers(df: pd.DataFrame) -> None:
        df.loc[df.index[-NULL_IDS:], "customer_id"] = np.nan

    def subscriptions(df: pd.DataFrame) -> None:
        df.loc[df.index[10 : 10 + ORPHANS], "customer_id"] = orphan_ids

    _rewrite(raw, "payments", payments)
    _rewrite(raw, "customers", customers)
    _rewrite(raw, "subscriptions", subscriptions)
    return {"orphans": orphan_ids}


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory, small_sim: Path):
    """Validation of the untouched small simulation (run once for the module)."""
    root = tmp_path_factory.mktemp("good")
    settings = config.load(root=root)
    return settings, validate_raw(settings, small_sim / "raw")


def test_good_data_passes_every_expectation(good) -> None:
    settings, result = good
    assert result.success, result.summary()
    assert result.failures == []
    assert result.evaluated > 150
    assert set(result.rows) >= {"customers", "subscriptions", "invoices", "payments", "usage"}
    assert result.rows["customers"] == 3_000
    assert result.docs_path == settings.path(DOCS_DIR) / "index.html"
    assert result.docs_path.is_file()
    assert result.raise_for_failures() is result


def test_corrupted_copy_fails_naming_each_expectation(project: config.Settings) -> None:
    """The `project` fixture is a copy: corrupting it leaves the shared simulation alone."""
    planted = _corrupt(project.raw_dir)

    result = validate_raw(project)

    assert not result.success
    found = {(f.table, f.column, f.expectation): f for f in result.failures}
    negative = found["payments", "amount", "expect_column_values_to_be_between"]
    assert negative.unexpected == NEGATIVE
    assert negative.examples == [-12.5]
    nulls = found["customers", "customer_id", "expect_column_values_to_not_be_null"]
    assert nulls.unexpected == NULL_IDS
    orphans = found["subscriptions", "customer_id", "expect_column_values_to_be_null"]
    # the planted ones, plus the subscriptions of the customers whose id was nulled
    assert orphans.unexpected == ORPHANS + NULL_IDS
    assert orphans.examples[:ORPHANS] == planted["orphans"]
    assert "customers.customer_id" in orphans.description

    with pytest.raises(DataError) as err:
        result.raise_for_failures()
    message = str(err.value)
    assert "\n" not in message
    for text in (
        "payments.amount must be positive",
        f"{NEGATIVE} rows, e.g. -12.5",
        "customers.customer_id must not be null",
        "subscriptions.customer_id must exist in customers.customer_id",
        f"{ORPHANS + NULL_IDS} rows, e.g. 1000000000",
        str(project.path(DOCS_DIR) / "index.html"),
    ):
        assert text in message

    docs = project.path(DOCS_DIR)
    assert (docs / "index.html").is_file()
    pages = list((docs / "validations").rglob("*.html"))
    assert {p.relative_to(docs / "validations").parts[0] for p in pages} >= {
        "payments",
        "subscriptions",
    }
    assert "must exist in customers.customer_id" in "".join(
        p.read_text() for p in (docs / "validations" / "subscriptions").rglob("*.html")
    )


def test_missing_table_or_column_is_a_clear_failure(project: config.Settings) -> None:
    shutil.rmtree(project.raw_dir / "offers")
    with pytest.raises(DataError, match=r"offers: no Parquet parts found"):
        validate_raw(project)

    shutil.copytree(project.raw_dir / "adoptions", project.raw_dir / "offers")  # wrong schema
    result = validate_raw(project)
    tables = {(f.table, f.expectation) for f in result.failures}
    assert ("offers", "expect_table_columns_to_match_set") in tables
    assert "offers" in result.summary()


def test_orphan_columns_mark_only_missing_parents() -> None:
    customers = pd.DataFrame({"customer_id": [1, 2, 3]})
    subs = pd.DataFrame({"customer_id": [1, 4, None, 3], "plan_id": [1, 1, 2, 9]})
    tables = {name: pd.DataFrame() for name in ("invoices", "usage", "offers", "adoptions")}
    tables |= {
        "customers": customers,
        "subscriptions": subs,
        "plans": pd.DataFrame({"plan_id": [1, 2]}),
        "payments": pd.DataFrame({"invoice_id": [7]}),
    }
    checked = with_checks(tables)
    assert checked["subscriptions"]["orphan_customer_id"].tolist() == [None, 4.0, None, None]
    assert checked["subscriptions"]["orphan_plan_id"].tolist() == [None, None, None, 9]
    assert "orphan_customer_id" not in tables["subscriptions"]  # inputs are not modified


@pytest.fixture(scope="module")
def feature_table(tmp_path_factory: pytest.TempPathFactory, small_sim: Path) -> Path:
    from features.table import snapshot_dates, write_feature_table

    path = tmp_path_factory.mktemp("features") / "features.parquet"
    write_feature_table(small_sim / "raw", path, snapshot_dates(pd.Timestamp("2025-01-01"), 12, 2))
    return path


def test_feature_table_passes_then_fails_when_broken(feature_table: Path, tmp_path: Path) -> None:
    settings = config.load(root=tmp_path)
    ok = validate_path(settings, feature_table)
    assert ok.success, ok.summary()
    assert ok.rows["features"] > 1_000

    df = pd.read_parquet(feature_table)
    df.loc[df.index[:5], "failed_payments"] = -1.0
    df.loc[df.index[5], "segment"] = "martian"
    broken = tmp_path / "broken.parquet"
    pd.concat([df, df.iloc[10:13]]).to_parquet(broken, index=False)

    result = validate_features(settings, broken)
    found = {(f.column, f.expectation): f.unexpected for f in result.failures}
    assert found["failed_payments", "expect_column_values_to_be_between"] == 5
    assert found["segment", "expect_column_values_to_be_in_set"] == 1
    assert found["customer_id,as_of", "expect_compound_columns_to_be_unique"] == 6
    with pytest.raises(DataError, match="features.segment must be one of"):
        result.raise_for_failures()


@pytest.mark.slow
def test_flow_stops_before_features_on_bad_data(project: config.Settings, prefect_harness) -> None:
    from flows.pipeline import pipeline

    _corrupt(project.raw_dir)
    features_path = project.path(project.params.features.path)
    assert not features_path.exists()

    with pytest.raises(DataError, match="subscriptions.customer_id must exist in customers"):
        pipeline(simulate=False, root=str(project.root))

    assert not features_path.exists()
    report = json.loads(project.path("reports/validation/raw.json").read_text())
    assert report["success"] is False
    assert report["failed"] >= 3
    assert (project.path(DOCS_DIR) / "index.html").is_file()
