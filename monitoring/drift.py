"""Drift reports: the one module that talks to Evidently (0.7, new `Report` API).

`drift_report(reference, current, ...)` makes the decision with NumPy statistics on the full
windows (`monitoring.decision`, seconds on a million rows) and renders the human report with
Evidently's `DataDriftPreset` on a stratified sample (`stratified_sample`, default 50k rows,
strata = segment × acquisition channel, so small segments keep their share). It writes

    reports/drift/<date>/<name>.html   Evidently report (data drift, prediction drift, quality)
    reports/drift/<date>/<name>.json   summary: verdict, reasons, per-feature stats, Evidently's
                                       own per-column drift read by metric name
    reports/index.html                 every report with its verdict, its closed month's realized
                                       and estimated AUC (`<name>.performance.json`, written by
                                       `monitoring.performance`) and trend charts, rebuilt from
                                       the JSONs (`monitoring.index_page`)

so tools and the index never parse HTML. Every column of the Evidently report is tested with our
own rule and thresholds (`monitoring.report_rule`), so its per-column flags are the verdict's.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import schema
from monitoring import report_rule
from monitoring.decision import Decision, Thresholds, detect_drift
from monitoring.index_page import write_index

STRATA = ("segment", "acquisition_channel")
PERFORMANCE_SUFFIX = ".performance.json"  # monitoring.performance writes these beside a report
PREDICTION = "prediction"
TARGET = "target"


@dataclass(frozen=True)
class DriftResult:
    """What `drift_report` produced."""

    name: str
    drift: bool
    decision: Decision
    html_path: Path
    json_path: Path
    index_path: Path
    evidently: dict[str, Any]
    seconds: dict[str, float]

    @property
    def verdict(self) -> str:
        return "DRIFT" if self.drift else "no drift"


def stratified_sample(
    frame: pd.DataFrame, rows: int, strata: tuple[str, ...] = STRATA, seed: int = 0
) -> pd.DataFrame:
    """Up to `rows` rows keeping each stratum's share (each non-empty stratum keeps ≥ 1 row)."""
    if len(frame) <= rows:
        return frame
    keys = [c for c in strata if c in frame.columns]
    if not keys:
        return frame.sample(rows, random_state=seed)
    rng = np.random.default_rng(seed)
    codes = frame.groupby(keys, sort=False, observed=True).ngroup().to_numpy()
    order = np.argsort(codes, kind="stable")
    counts = np.bincount(codes)
    take = np.maximum(np.round(counts * rows / len(frame)).astype(int), 1)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    picks = [
        order[s + rng.choice(n, size=min(k, n), replace=False)]
        for s, n, k in zip(starts, counts, take, strict=True)
        if n
    ]
    return frame.iloc[np.sort(np.concatenate(picks))]


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "report"


def _evidently_frame(
    frame: pd.DataFrame, predictions: np.ndarray | None, labels: np.ndarray | None
) -> pd.DataFrame:
    cols = [c for c in schema.COLUMNS if c in frame.columns]
    out = frame[cols].copy()
    if predictions is not None:
        out[PREDICTION] = np.asarray(predictions, float)
    if labels is not None:
        y = np.asarray(labels, float)
        if np.isfinite(y).all():  # Evidently's classification needs 0/1 integers, no gaps
            out[TARGET] = y.astype(int)
    return out


def run_evidently(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    with_predictions: bool,
    with_labels: bool,
    html_path: Path,
    thresholds: Thresholds | None = None,
    decision: Decision | None = None,
) -> dict[str, Any]:
    """Render the Evidently report to `html_path`; return Evidently's per-column drift by name.

    Every column is tested with our rule (`monitoring.report_rule`): the features with their
    thresholds from `decision` (the verdict's feature table), the prediction with
    `prediction_psi_threshold`, so each column's drift flag in the HTML is the verdict's. With
    labels, Evidently's `ClassificationQuality` preset shows the realized quality. Evidently's
    dataset-drift headline compares an unweighted share of drifted columns with `drift_share`;
    it cannot weight columns, so `drift_share` is set from the verdict (`_headline_share`) and
    the headline says what the weighted rule said. The weights and reasons are in the JSON
    summary and the index.

    Args:
        reference, current: the report's (sampled) frames, `_evidently_frame` columns.
        with_predictions: frames carry `prediction` (adds prediction drift).
        with_labels: frames carry `target` (adds the classification preset).
        html_path: where the HTML goes.
        thresholds: the rule's knobs (defaults of `Thresholds` if None).
        decision: the verdict on the full windows; None decides on these frames.
    """
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import ClassificationQuality, DataDriftPreset

    thresholds = thresholds or Thresholds()
    features = [c for c in schema.COLUMNS if c in reference.columns]
    if decision is None:
        scores = (reference[PREDICTION], current[PREDICTION]) if with_predictions else None
        decision = detect_drift(reference, current, thresholds, predictions=scores)
    report_rule.register()
    numeric = [c for c in features if c in schema.NUMERIC]
    categorical = [c for c in features if c in schema.CATEGORICAL]
    labelled = with_labels and with_predictions
    definition = DataDefinition(
        numerical_columns=numeric + ([PREDICTION] if with_predictions else []),
        categorical_columns=categorical,
        classification=[BinaryClassification(target=TARGET, prediction_probas=PREDICTION)]
        if labelled
        else None,
    )
    limits = {str(f["column"]): float(f["threshold"]) for f in decision.features}
    metrics: list[Any] = [
        DataDriftPreset(
            columns=features,
            drift_share=_headline_share(decision, features),
            per_column_method={c: report_rule.FEATURE_TEST for c in features},
            per_column_threshold={c: limits.get(c, thresholds.psi_threshold) for c in features},
        )
    ]
    if with_predictions:
        metrics.append(
            ValueDrift(
                column=PREDICTION,
                method=report_rule.PREDICTION_TEST,
                threshold=thresholds.prediction_psi_threshold,
            )
        )
    if labelled:
        metrics.append(ClassificationQuality(conf_matrix=True, pr_curve=True))
    ref_ds = Dataset.from_pandas(reference, data_definition=definition)
    cur_ds = Dataset.from_pandas(current, data_definition=definition)
    figures = report_rule.figures_from_decision(decision, thresholds.alpha, thresholds.bins)
    with report_rule.verdict_figures(figures):
        snapshot = Report(metrics, include_tests=True).run(
            reference_data=ref_ds, current_data=cur_ds
        )
    html_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(html_path))
    return _read_results(snapshot.dict())


def _headline_share(decision: Decision, features: list[str]) -> float:
    """Evidently's `drift_share` that makes its unweighted headline agree with our verdict:
    the drifted columns' share itself when the weighted rule says data drift, above it if not."""
    drifted = sum(bool(f["drifted"]) for f in decision.features if f["column"] in features)
    return (drifted if decision.data_drift else drifted + 0.5) / max(len(features), 1)


def _metric_type(entry: Mapping[str, Any]) -> str:
    kind = str(entry.get("config", {}).get("type", ""))
    return kind.rsplit(":", 1)[-1] or str(entry.get("metric_name", "")).split("(")[0]


CLASSIFICATION = ("Accuracy", "Precision", "Recall", "F1Score", "RocAuc", "LogLoss")


def _read_results(result: Mapping[str, Any]) -> dict[str, Any]:
    """Pick Evidently's numbers by metric type and column name, never by list position.

    A column's `drifted` flag is the status of its ValueDrift test (FAIL = drift detected);
    `dataset_drift` is the status of the drifted-columns share test (the report's headline).
    """
    out: dict[str, Any] = {"columns": {}}
    flags = {}
    for test in result.get("tests", []):
        column = test.get("metric_config", {}).get("params", {}).get("column")
        name, failed = (
            str(test.get("name", "")),
            str(test.get("status", "")).upper().endswith("FAIL"),
        )
        if column is not None and name.startswith("Value Drift"):
            flags[column] = failed
        elif name.startswith("Share of Drifted Columns"):  # Evidently's dataset-drift headline
            out["dataset_drift"] = failed
    for entry in result.get("metrics", []):
        kind, config, value = _metric_type(entry), entry.get("config", {}), entry.get("value")
        if kind == "ValueDrift":
            column = config.get("column")
            out["columns"][column] = {
                "method": config.get("method"),
                "threshold": config.get("threshold"),
                "score": value,
                "drifted": flags.get(column),
            }
        elif kind == "DriftedColumnsCount" and isinstance(value, Mapping):
            out["drifted_columns"] = value.get("count")
            out["drifted_share"] = value.get("share")
        elif kind in CLASSIFICATION:
            out.setdefault("classification", {})[kind] = value
    if "RocAuc" in out.get("classification", {}):
        out["roc_auc"] = out["classification"]["RocAuc"]
    return out


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating | float):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, Path | pd.Timestamp | dt.date):
        return str(value)
    return value


def drift_report(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    predictions: tuple[np.ndarray, np.ndarray] | None = None,
    labels: tuple[np.ndarray | None, np.ndarray | None] | None = None,
    *,
    out_dir: Path,
    name: str = "drift",
    date: dt.date | None = None,
    thresholds: Thresholds | None = None,
    importance: Mapping[str, float] | None = None,
    sample_rows: int = 50_000,
    extra: Mapping[str, Any] | None = None,
) -> DriftResult:
    """Decide on drift and write the HTML report, its JSON summary and the index.

    Args:
        reference: feature window the model learned from (`schema.COLUMNS` at least).
        current: feature window to check.
        predictions: (reference scores, current scores) row-aligned with the frames: adds
            prediction drift.
        labels: (reference labels, current labels) row-aligned, either may be None: adds model
            quality (AUC, calibration) where known.
        out_dir: the reports folder (`settings.path(settings.params.drift.reports_dir)`).
        name: report name (file stem), e.g. `usage_drop` or `daily`.
        date: folder date; today by default.
        thresholds: decision knobs; defaults of `Thresholds` if None.
        importance: feature → importance for the weighted share.
        sample_rows: rows per window behind the Evidently report (stratified).
        extra: more fields for the JSON summary (model version, data hash...).

    Returns:
        The verdict, the decision and the paths written.
    """
    import time

    thresholds = thresholds or Thresholds()
    date = date or dt.date.today()
    stem = _safe_name(name)
    folder = out_dir / "drift" / date.isoformat()
    html_path, json_path = folder / f"{stem}.html", folder / f"{stem}.json"

    t0 = time.perf_counter()
    decision = detect_drift(reference, current, thresholds, importance, predictions, labels)
    t1 = time.perf_counter()

    ref_e = _evidently_frame(
        reference,
        None if predictions is None else predictions[0],
        None if labels is None else labels[0],
    )
    cur_e = _evidently_frame(
        current,
        None if predictions is None else predictions[1],
        None if labels is None else labels[1],
    )
    with_labels = TARGET in ref_e.columns and TARGET in cur_e.columns
    if not with_labels:
        ref_e, cur_e = (
            ref_e.drop(columns=TARGET, errors="ignore"),
            cur_e.drop(columns=TARGET, errors="ignore"),
        )
    ref_s = stratified_sample(ref_e, sample_rows, seed=1)
    cur_s = stratified_sample(cur_e, sample_rows, seed=2)
    evidently = run_evidently(
        ref_s, cur_s, predictions is not None, with_labels, html_path, thresholds, decision
    )
    t2 = time.perf_counter()

    seconds = {"decision": t1 - t0, "report": t2 - t1}
    summary = {
        "name": name,
        "date": date.isoformat(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "drift": decision.drift,
        "verdict": "DRIFT" if decision.drift else "no drift",
        "share": decision.share,
        "data_drift": decision.data_drift,
        "prediction_drift": decision.prediction_drift,
        "quality_drop": decision.quality_drop,
        "reasons": decision.reasons,
        "rows": {"reference": len(reference), "current": len(current)},
        "report_rows": {"reference": len(ref_s), "current": len(cur_s)},
        "thresholds": {k: v for k, v in thresholds.__dict__.items()},
        "features": decision.features,
        "prediction": decision.prediction,
        "quality": decision.quality,
        "evidently": evidently,
        "html": html_path.name,
        "seconds": seconds,
        **dict(extra or {}),
    }
    json_path.write_text(json.dumps(_jsonable(summary), indent=2) + "\n")
    index = write_index(out_dir)
    return DriftResult(
        name, decision.drift, decision, html_path, json_path, index, evidently, seconds
    )
