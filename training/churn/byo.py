"""Bring your own churn table: a CSV with one row per customer and a churn column.

`read_churn_csv` infers which columns are numeric (also numbers stored as text: quotes, spaces,
thousands separators, `%`/`$`) and which categorical, turns a Yes/No / True/False / 1/0 target
into 0/1, keeps blank numeric cells as NaN (the model fills them with the training median) and
blank categories as `(missing)`, drops constant and id-like columns, and says what it did in a
`CsvReport`. The same `train_churn` pipeline then trains on it.

What it refuses, each with one line naming the column: headers that are blank or collide once
trimmed (`a` and ` a `), feature names that are not plain identifiers (Keras layer and SavedModel
signature names reject `/` and spaces deep inside training), names the frame itself uses
(`churned`, `customer_id`), and non-finite numbers (`inf`, `1e999`) in a numeric column.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from inference.churn import FeatureSpec
from paycycle.errors import DataError
from training.churn.model import LABEL

POSITIVE = {"1", "1.0", "yes", "y", "true", "t", "churned", "churn"}
NEGATIVE = {"0", "0.0", "no", "n", "false", "f", "retained", "active"}
BLANKS = {"", "na", "n/a", "nan", "null", "none", "-", "?"}
MISSING_CATEGORY = "(missing)"
NUMERIC_SHARE = 0.95  # share of non-blank cells that must parse for a column to be numeric
MAX_CATEGORIES = 50
_NUM_JUNK = re.compile(r"[\s,$%€£]")
# a feature name becomes a Keras input/layer name and a SavedModel signature argument
SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
RESERVED = (LABEL, "customer_id")


@dataclass
class CsvReport:
    """What `read_churn_csv` inferred and changed."""

    rows: int
    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    converted_text_numbers: list[str] = field(default_factory=list)
    blank_cells: dict[str, int] = field(default_factory=dict)
    unparsed_numbers: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, str] = field(default_factory=dict)
    target_mapping: dict[str, int] = field(default_factory=dict)
    dropped_rows: int = 0
    positive_rate: float = 0.0

    def lines(self) -> list[str]:
        out = [
            f"{self.rows} rows, churn rate {self.positive_rate:.1%}"
            + (
                f" ({self.dropped_rows} rows without a target dropped)" if self.dropped_rows else ""
            ),
            f"numeric: {', '.join(self.numeric) or '-'}",
            f"categorical: {', '.join(self.categorical) or '-'}",
            f"target values: {self.target_mapping}",
        ]
        if self.converted_text_numbers:
            out.append(
                f"numbers stored as text, converted: {', '.join(self.converted_text_numbers)}"
            )
        for col, n in self.blank_cells.items():
            how = "filled with the training median" if col in self.numeric else MISSING_CATEGORY
            out.append(f"{col}: {n} blank cell(s) → {how}")
        for col, n in self.unparsed_numbers.items():
            out.append(f"{col}: {n} non-numeric cell(s) treated as blank")
        for col, why in self.dropped.items():
            out.append(f"{col}: dropped ({why})")
        return out


def _blank(s: pd.Series) -> pd.Series:
    return s.str.strip().str.lower().isin(BLANKS)


def _read_header(path: Path) -> list[str]:
    """The header row as written (pandas would rename duplicates to `a.1` before we saw them)."""
    with path.open(encoding="utf-8-sig", newline="") as fh:
        return next(csv.reader(fh), [])


def _check_header(header: list[str], path: Path) -> list[int]:
    """Headers equal once trimmed are ambiguous: refuse them, naming them.

    Returns:
        0-based positions of blank headers (a trailing comma, or a column someone forgot to name).
    """
    seen: dict[str, int] = {}
    blanks = []
    for pos, name in enumerate(header, start=1):
        key = name.strip()
        if not key:
            blanks.append(pos - 1)
            continue
        if key in seen:
            raise DataError(
                f"{key}: header appears twice in {path.name} (columns {seen[key]} and {pos}, "
                "equal once spaces are trimmed); rename one"
            )
        seen[key] = pos
    return blanks


def _drop_unnamed(raw: pd.DataFrame, blanks: list[int], path: Path, report: CsvReport) -> None:
    """Drop empty columns without a header; refuse one with values (what would we call it?)."""
    for pos in blanks:
        col = raw.columns[pos]
        if not _blank(raw[col]).all():
            raise DataError(
                f"column {pos + 1} of {path.name}: has values but a blank header; name the column"
            )
        report.dropped[f"column {pos + 1}"] = "blank header, no values"
    raw.drop(columns=[raw.columns[p] for p in blanks], inplace=True)


def _check_feature_name(col: str) -> None:
    """A feature column must be a plain identifier and not a name the frame uses itself."""
    if col in RESERVED:
        raise DataError(
            f"{col}: reserved column name (the training frame uses it); rename the column "
            "or pass it as --target/--id"
        )
    if not SAFE_NAME.fullmatch(col):
        safe = re.sub(r"\W+", "_", col, flags=re.ASCII).strip("_") or "feature"
        safe = safe if SAFE_NAME.fullmatch(safe) else f"f_{safe}"
        raise DataError(
            f"{col}: column name must be letters, digits and _ (no spaces, '/' or other "
            f"symbols, not starting with a digit); rename it, e.g. to {safe}"
        )


def _overflow(text: str) -> float:
    """`inf` if Python reads `text` as a number beyond float range (`1e999`), else NaN."""
    try:
        value = float(text)
    except ValueError:
        return np.nan
    return value if np.isinf(value) else np.nan


def _to_numbers(cells: pd.Series) -> pd.Series:
    """Cells as floats, NaN where not a number; pandas reads `1e999` as NaN, we keep it `inf`."""
    text = cells.str.replace(_NUM_JUNK, "", regex=True)
    nums = pd.to_numeric(text, errors="coerce")
    missed = nums.isna()
    if missed.any():
        nums[missed] = text[missed].map(_overflow)
    return nums


def _check_finite(col: str, nums: pd.Series, rows: np.ndarray) -> None:
    """`inf`, `-inf` and `1e999` parse as numbers but no model can train on them."""
    bad = np.isinf(nums.to_numpy(dtype="float64", na_value=np.nan))
    if bad.any():
        where = ", ".join(str(n) for n in rows[nums.index[bad]][:3])
        raise DataError(
            f"{col}: {int(bad.sum())} non-finite number(s) (inf or beyond float range) in row(s) "
            f"{where} (the header is row 1); use a finite number or leave the cell blank"
        )


def _target(raw: pd.Series, name: str, report: CsvReport) -> pd.Series:
    norm = raw.str.strip().str.lower()
    known = norm.isin(POSITIVE | NEGATIVE)
    bad = ~known & ~norm.isin(BLANKS)
    if bad.any():
        examples = ", ".join(repr(v) for v in raw[bad].unique()[:3])
        raise DataError(f"{name}: target must be yes/no, true/false or 1/0; got {examples}")
    report.target_mapping = {
        v: int(v.strip().lower() in POSITIVE) for v in sorted(raw[known].unique())
    }
    return norm.where(known).map(lambda v: 1 if v in POSITIVE else 0 if v in NEGATIVE else np.nan)


def read_churn_csv(
    path: Path, target: str, id_column: str | None = None
) -> tuple[pd.DataFrame, FeatureSpec, CsvReport]:
    """Read and type a user's churn table.

    Args:
        path: CSV file.
        target: the churn column (yes/no, true/false, 1/0).
        id_column: optional customer id (kept as `customer_id`, never a feature).

    Returns:
        (frame with feature columns + `churned` [+ `customer_id`], feature spec, report).

    Raises:
        DataError: file missing/unreadable, target or id column missing, unusable target,
            colliding or unsafe headers, non-finite numbers.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    try:
        header = _read_header(path)
        blanks = _check_header(header, path)
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
        typed = pd.read_csv(path, nrows=10_000)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"{path}: not a readable CSV ({exc.__class__.__name__})") from None
    raw.columns = [c.strip() for c in raw.columns]
    typed.columns = [c.strip() for c in typed.columns]
    for col, role in ((target, "target"), (id_column, "id")):
        if col is not None and col not in raw.columns:
            raise DataError(
                f"{col}: {role} column not found in {path.name} "
                f"(columns: {', '.join(raw.columns[:12])})"
            )
    report = CsvReport(rows=len(raw))
    if blanks and len(raw.columns) == len(header):
        _drop_unnamed(raw, blanks, path, report)
    y = _target(raw[target], target, report)
    keep = y.notna()
    rows = np.flatnonzero(keep.to_numpy()) + 2  # each kept row's number, the header being row 1
    report.dropped_rows = int((~keep).sum())
    raw, y, typed_keep = raw[keep].reset_index(drop=True), y[keep].astype(int), typed
    report.rows, report.positive_rate = len(raw), float(y.mean()) if len(y) else 0.0
    if y.nunique() < 2:
        raise DataError(f"{target}: needs both churned and retained customers")
    out = pd.DataFrame(index=raw.index)
    numeric, categorical, vocab = [], [], {}
    for col in raw.columns:
        if col in (target, id_column):
            continue
        s, blank = raw[col], _blank(raw[col])
        filled = s[~blank]
        if filled.nunique() <= 1:
            report.dropped[col] = "constant or empty"
            continue
        nums = _to_numbers(filled)
        if nums.notna().mean() >= NUMERIC_SHARE:
            _check_finite(col, nums, rows)
            values = pd.Series(np.nan, index=raw.index)
            values[~blank] = nums
            out[col] = values.astype("float64")
            numeric.append(col)
            if not pd.api.types.is_numeric_dtype(typed_keep[col]):
                report.converted_text_numbers.append(col)
            if nums.isna().any():
                report.unparsed_numbers[col] = int(nums.isna().sum())
        else:
            if filled.nunique() > max(MAX_CATEGORIES, 0.5 * len(filled)):
                report.dropped[col] = f"text with {filled.nunique()} distinct values (id-like)"
                continue
            out[col] = s.str.strip().where(~blank, MISSING_CATEGORY)
            top = out[col].value_counts().index[:MAX_CATEGORIES]
            vocab[col] = tuple(sorted(str(v) for v in top))
            categorical.append(col)
        if blank.any():
            report.blank_cells[col] = int(blank.sum())
    for col in numeric + categorical:
        _check_feature_name(col)
    if not numeric and not categorical:
        raise DataError(f"{path.name}: no usable feature columns besides {target!r}")
    out[LABEL] = y.to_numpy()
    if id_column:
        out["customer_id"] = raw[id_column].to_numpy()
    report.numeric, report.categorical = numeric, categorical
    heavy = tuple(c for c in numeric if (out[c].dropna() >= 0).all() and out[c].max() > 100)
    spec = FeatureSpec(
        numeric=tuple(numeric),
        categorical=tuple(categorical),
        vocabulary=vocab,
        log_features=heavy,
        defaults={c: MISSING_CATEGORY for c in categorical},
    )
    return out, spec, report


def split_random(
    frame: pd.DataFrame, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A stratified random holdout (a BYO table has no time axis)."""
    rng = np.random.default_rng(seed)
    hold = np.zeros(len(frame), dtype=bool)
    for _, idx in frame.groupby(LABEL).indices.items():
        hold[rng.choice(idx, max(1, int(len(idx) * fraction)), replace=False)] = True
    return frame[~hold], frame[hold]
