"""`reports/index.html`: every drift report with its verdict, and trend charts over windows.

Rebuilt from files only, so any process can regenerate it and nothing parses HTML:

    reports/drift/<date>/<name>.json     drift summaries (`monitoring.drift.drift_report`)
    reports/drift/<date>/performance.json  realized / estimated performance of the window, per
                                         model version (written by the performance monitor when
                                         labels or estimates exist; absent otherwise; a
                                         `<name>.performance.json` is read the same way)

Charts (inline SVG, `monitoring.charts`): the weighted drift share per report name over windows
with the share threshold, and, when performance files exist, realized ROC AUC (solid) and the
label-free estimate (dashed, with its confidence band) per model version.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from monitoring.charts import PALETTE, Series, line_chart

PERFORMANCE_FILE = "performance.json"


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def read_summaries(reports_dir: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Drift summaries, newest folder first (unreadable files are skipped)."""
    out = []
    for path in sorted((reports_dir / "drift").glob("*/*.json"), reverse=True):
        if not path.name.endswith(PERFORMANCE_FILE) and (summary := read_json(path)) is not None:
            out.append((path, summary))
    return out


def window_performance(report_json: Path) -> dict[str, Any] | None:
    """The window's performance file next to a drift summary (`<name>.performance.json`, else
    `performance.json`), or None when there is none or it cannot be read."""
    path = Path(report_json)
    own = path.with_name(f"{path.stem}.{PERFORMANCE_FILE}")
    return read_json(own) if own.exists() else read_json(path.parent / PERFORMANCE_FILE)


def read_performance(reports_dir: Path) -> list[dict[str, Any]]:
    """Per-window performance files, oldest window first."""
    found = [read_json(p) for p in (reports_dir / "drift").glob(f"*/*{PERFORMANCE_FILE}")]
    return sorted((p for p in found if p and "window" in p), key=lambda p: str(p["window"]))


def _window(summary: dict[str, Any]) -> str:
    """A summary's window label: its current as-of date (else the report date)."""
    return str(summary.get("current_as_of") or summary.get("date", ""))[:10]


def report_series(name: str) -> str:
    """The series a report belongs to: its name without the run's `-HHMMSS` suffix
    (`monitoring.loop.report_name`), so daily runs form one trend."""
    return re.sub(r"-\d{6}$", "", name) or name


def drift_share_chart(summaries: list[tuple[Path, dict[str, Any]]]) -> str:
    """Weighted drift share per report series over windows, with the share threshold (the
    newest run wins when a window was checked more than once)."""
    xs = sorted({_window(s) for _, s in summaries})
    by_name: dict[str, dict[str, float | None]] = {}
    for _, s in reversed(summaries):  # oldest first, so newer runs overwrite
        series = by_name.setdefault(report_series(str(s.get("name", ""))), {})
        series[_window(s)] = float(s.get("share", 0.0))
    rules = [s.get("thresholds", {}).get("share_threshold") for _, s in summaries]
    rule = next((float(r) for r in rules if r is not None), None)
    series = [Series(name, points) for name, points in sorted(by_name.items())]
    return line_chart(
        "Weighted drift share per window",
        xs,
        series,
        y_label="weighted share",
        rule=rule,
        rule_label="threshold",
    )


def auc_chart(performance: list[dict[str, Any]]) -> str:
    """Realized (solid) vs estimated (dashed, band) ROC AUC per model version over windows."""
    xs = [str(p["window"]) for p in performance]
    realized: dict[str, dict[str, float | None]] = {}
    estimated: dict[str, dict[str, float | None]] = {}
    bands: dict[str, dict[str, tuple[float, float]]] = {}
    for p in performance:
        window = str(p["window"])
        for version, m in (p.get("model_versions") or {}).items():
            real, est = (m or {}).get("realized"), (m or {}).get("estimated")
            if real and real.get("roc_auc") is not None:
                realized.setdefault(version, {})[window] = float(real["roc_auc"])
            if est and est.get("roc_auc") is not None:
                estimated.setdefault(version, {})[window] = float(est["roc_auc"])
                if est.get("roc_auc_low") is not None and est.get("roc_auc_high") is not None:
                    low, high = float(est["roc_auc_low"]), float(est["roc_auc_high"])
                    bands.setdefault(version, {})[window] = (low, high)
    versions = sorted(set(realized) | set(estimated))
    series = []
    for i, version in enumerate(versions):
        color = PALETTE[i % len(PALETTE)]
        if version in realized:
            series.append(Series(f"v{version} realized", realized[version], color=color))
        if version in estimated:
            series.append(
                Series(
                    f"v{version} estimated",
                    estimated[version],
                    band=bands.get(version, {}),
                    dashed=True,
                    color=color,
                )
            )
    return line_chart("ROC AUC per model version: estimated vs realized", xs, series, y_label="AUC")


def _num(value: Any) -> str:
    return "—" if value is None else f"{float(value):.3f}"


def _performance_cells(perf: dict[str, Any] | None) -> str:
    """A report's closed month: per model version, realized and estimated AUC, and the verdict."""
    if not perf:
        return "<td>—</td><td>—</td><td>—</td><td>—</td>"
    realized, estimated = [], []
    for version, v in (perf.get("model_versions") or {}).items():
        r, e = (v or {}).get("realized") or {}, (v or {}).get("estimated") or {}
        realized.append(f"v{version}: {_num(r.get('roc_auc'))}")
        band = f"[{_num(e.get('roc_auc_low'))}, {_num(e.get('roc_auc_high'))}]"
        estimated.append(f"v{version}: {_num(e.get('roc_auc'))} {band}")
    verdict = "; ".join((perf.get("decision") or {}).get("reasons", [])) or "no drop"
    cells = [[perf.get("window", "")], realized, estimated, [verdict]]
    return "".join(f"<td>{'<br>'.join(html.escape(str(x)) for x in c)}</td>" for c in cells)


def _row(reports_dir: Path, path: Path, s: dict[str, Any]) -> str:
    rel = path.with_suffix(".html").relative_to(reports_dir).as_posix()
    verdict = "DRIFT" if s.get("drift") else "no drift"
    css = "drift" if s.get("drift") else "ok"
    reasons = "; ".join(s.get("reasons", [])) or "—"
    return (
        f"<tr class='{css}'><td>{html.escape(str(s.get('date', '')))}</td>"
        f"<td><a href='{html.escape(rel)}'>{html.escape(str(s.get('name', '')))}</a></td>"
        f"<td>{verdict}</td><td>{float(s.get('share', 0.0)):.3f}</td>"
        f"<td>{s.get('rows', {}).get('current', '')}</td>"
        f"<td>{html.escape(reasons)}</td>{_performance_cells(window_performance(path))}</tr>"
    )


def write_index(reports_dir: Path) -> Path:
    """Rebuild `reports/index.html` from the drift summaries and performance files."""
    rows = read_summaries(reports_dir)
    charts = drift_share_chart(rows) + auc_chart(read_performance(reports_dir))
    body = "\n".join(_row(reports_dir, path, s) for path, s in rows)
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>PayCycle drift reports</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ border-bottom: 1px solid #ddd; padding: .4rem .6rem; text-align: left; }}
tr.drift td:nth-child(3) {{ color: #b00020; font-weight: 600; }}
tr.ok td:nth-child(3) {{ color: #1b5e20; }}
.charts {{ display: flex; flex-wrap: wrap; gap: 1rem; }}
figure.chart {{ margin: 0; }} figcaption {{ font-weight: 600; margin-bottom: .3rem; }}
</style></head><body>
<h1>PayCycle drift reports</h1>
<p>{len(rows)} report(s), newest first. Verdict rule: <code>monitoring/decision.py</code>;
thresholds: <code>params.yaml</code> → <code>drift</code>.</p>
<section class="charts">{charts}</section>
<table><thead><tr><th>date</th><th>report</th><th>verdict</th><th>weighted drift share</th>
<th>current rows</th><th>reasons</th><th>closed month</th><th>realized AUC</th>
<th>estimated AUC [band]</th><th>realized verdict</th></tr></thead>
<tbody>
{body}
</tbody></table></body></html>
"""
    reports_dir.mkdir(parents=True, exist_ok=True)
    index = reports_dir / "index.html"
    index.write_text(page)
    return index
