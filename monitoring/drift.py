"""Drift reports: the one module that talks to Evidently (0.7, new `Report` API).

`drift_report(reference, current, ...)` makes the decision with NumPy statistics on the full
windows (`monitoring.decision`, seconds on a million rows) and renders the human report with
Evidently's `DataDriftPreset` on a stratified sample (`stratified_sample`, default 50k rows,
strata = segment × acquisition channel, so small segments keep their share). It writes

    reports/drift/<date>/<name>.html   Evidently report (data drift, prediction drift, quality)
    reports/drift/<date>/<name>.json   summary: verdict, reasons, per-feature stats, Evidently's
                                       own per-column drift read by metric name
    reports/index.html                 every report with its verdict, rebuilt from the JSONs
                                       (and the realized/estimated AUC of its closed month,
                                       from `<name>.performance.json`, `monitoring.performance`)

so tools and the index never parse HTML.
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features import schema
from monitoring.decision import Decision, Thresholds, detect_drift

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
        out[TARGET] = np.asarray(labels, float)
    return out


def run_evidently(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    with_predictions: bool,
    with_labels: bool,
    html_path: Path,
    drift_share: float = 0.5,
) -> dict[str, Any]:
    """Render the Evidently report to `html_path`; return Evidently's per-column drift by name.

    `drift_share` sets Evidently's own (unweighted) dataset-drift headline; our verdict, with
    importance weights and the reasons, is in the JSON summary and the index.
    """
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.metrics import RocAuc, ValueDrift
    from evidently.presets import DataDriftPreset

    features = [c for c in schema.COLUMNS if c in reference.columns]
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
    metrics: list[Any] = [DataDriftPreset(columns=features, drift_share=drift_share)]
    if with_predictions:
        metrics.append(ValueDrift(column=PREDICTION))
    if labelled:
        metrics.append(RocAuc())
    ref_ds = Dataset.from_pandas(reference, data_definition=definition)
    cur_ds = Dataset.from_pandas(current, data_definition=definition)
    snapshot = Report(metrics).run(reference_data=ref_ds, current_data=cur_ds)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    snapshot.save_html(str(html_path))
    return _read_results(snapshot.dict())


def _metric_type(entry: Mapping[str, Any]) -> str:
    kind = str(entry.get("config", {}).get("type", ""))
    return kind.rsplit(":", 1)[-1] or str(entry.get("metric_name", "")).split("(")[0]


def _read_results(result: Mapping[str, Any]) -> dict[str, Any]:
    """Pick Evidently's numbers by metric type and column name, never by list position."""
    out: dict[str, Any] = {"columns": {}}
    for entry in result.get("metrics", []):
        kind, config, value = _metric_type(entry), entry.get("config", {}), entry.get("value")
        if kind == "ValueDrift":
            out["columns"][config.get("column")] = {
                "method": config.get("method"),
                "threshold": config.get("threshold"),
                "score": value,
            }
        elif kind == "DriftedColumnsCount" and isinstance(value, Mapping):
            out["drifted_columns"] = value.get("count")
            out["drifted_share"] = value.get("share")
        elif kind == "RocAuc":
            out["roc_auc"] = value
    return out


def _performance_cells(perf: Mapping[str, Any] | None) -> str:
    """Index cells of a report's closed month: per model version, realized and estimated AUC."""
    if not perf:
        return "<td>—</td><td>—</td><td>—</td><td>—</td>"
    realized, estimated = [], []
    for version, v in perf.get("model_versions", {}).items():
        r, e = v.get("realized") or {}, v.get("estimated") or {}
        realized.append(f"v{version}: {_num(r.get('roc_auc'))}")
        band = f"[{_num(e.get('roc_auc_low'))}, {_num(e.get('roc_auc_high'))}]"
        estimated.append(f"v{version}: {_num(e.get('roc_auc'))} {band}")
    verdict = "; ".join(perf.get("decision", {}).get("reasons", [])) or "no drop"
    cells = [[perf.get("window", "")], realized, estimated, [verdict]]
    return "".join(f"<td>{'<br>'.join(html.escape(str(x)) for x in c)}</td>" for c in cells)


def _num(value: Any) -> str:
    return "—" if value is None else f"{float(value):.3f}"


def write_index(reports_dir: Path) -> Path:
    """Rebuild `reports/index.html` from every `drift/<date>/<name>.json` summary."""
    rows = []
    for path in sorted((reports_dir / "drift").glob("*/*.json"), reverse=True):
        if path.name.endswith(PERFORMANCE_SUFFIX):
            continue
        try:
            summary = json.loads(path.read_text())
            perf_path = path.with_name(path.stem + PERFORMANCE_SUFFIX)
            if perf_path.exists():
                summary["performance"] = json.loads(perf_path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        rows.append((path, summary))
    body = []
    for path, s in rows:
        rel = path.with_suffix(".html").relative_to(reports_dir).as_posix()
        verdict = "DRIFT" if s.get("drift") else "no drift"
        css = "drift" if s.get("drift") else "ok"
        reasons = "; ".join(s.get("reasons", [])) or "—"
        body.append(
            f"<tr class='{css}'><td>{html.escape(str(s.get('date', '')))}</td>"
            f"<td><a href='{html.escape(rel)}'>{html.escape(str(s.get('name', '')))}</a></td>"
            f"<td>{verdict}</td><td>{float(s.get('share', 0.0)):.3f}</td>"
            f"<td>{s.get('rows', {}).get('current', '')}</td>"
            f"<td>{html.escape(reasons)}</td>{_performance_cells(s.get('performance'))}</tr>"
        )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>PayCycle drift reports</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .4rem .6rem; text-align: left; }}
tr.drift td:nth-child(3) {{ color: #b00020; font-weight: 600; }}
tr.ok td:nth-child(3) {{ color: #1b5e20; }}
</style></head><body>
<h1>PayCycle drift reports</h1>
<p>{len(rows)} report(s), newest first. Verdict rule: <code>monitoring/decision.py</code>;
thresholds: <code>params.yaml</code> → <code>drift</code>.</p>
<table><thead><tr><th>date</th><th>report</th><th>verdict</th><th>weighted drift share</th>
<th>current rows</th><th>reasons</th><th>closed month</th><th>realized AUC</th>
<th>estimated AUC [band]</th><th>realized verdict</th></tr></thead>
<tbody>
{chr(10).join(body)}
</tbody></table></body></html>
"""
    reports_dir.mkdir(parents=True, exist_ok=True)
    index = reports_dir / "index.html"
    index.write_text(page)
    return index


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
    with_labels = labels is not None and labels[0] is not None and labels[1] is not None
    if not with_labels:
        ref_e, cur_e = (
            ref_e.drop(columns=TARGET, errors="ignore"),
            cur_e.drop(columns=TARGET, errors="ignore"),
        )
    ref_s = stratified_sample(ref_e, sample_rows, seed=1)
    cur_s = stratified_sample(cur_e, sample_rows, seed=2)
    evidently = run_evidently(
        ref_s, cur_s, predictions is not None, with_labels, html_path, thresholds.share_threshold
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
