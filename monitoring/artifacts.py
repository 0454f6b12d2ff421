"""Content of the Prefect artifacts a reviewer reads: one per monitoring run, one per promotion.

Plain functions over the JSON the monitoring and promotion steps already write (no Prefect
here): `flows/monitor.py` and the promote task in `flows/train.py` pass the result to
`prefect.artifacts.create_markdown_artifact` / `create_table_artifact`.

A monitoring run's artifact shows the verdict, its reasons and, when the window's
`performance.json` exists next to its drift report (see `monitoring.index_page`), the realized
and estimated metrics per model version; without it, the metric cells say so instead.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitoring.index_page import report_series

MISSING = "—"


@dataclass(frozen=True)
class ArtifactContent:
    """What one artifact pair shows: a key, a markdown summary and table rows."""

    key: str
    markdown: str
    table: list[dict[str, Any]]
    description: str


def artifact_key(*parts: str) -> str:
    """A Prefect artifact key (lowercase letters, digits and dashes only)."""
    return re.sub(r"[^a-z0-9-]+", "-", "-".join(parts).lower()).strip("-") or "artifact"


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _version_rows(performance: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """One row per model version: rows, realized and estimated AUC / Brier (with the band)."""
    if not performance:
        return [{"model_version": MISSING, "rows": MISSING, "note": "no performance file yet"}]
    rows = []
    for version, m in sorted((performance.get("model_versions") or {}).items()):
        real, est = (m or {}).get("realized") or {}, (m or {}).get("estimated") or {}
        low, high = est.get("roc_auc_low"), est.get("roc_auc_high")
        rows.append(
            {
                "model_version": str(version),
                "rows": (m or {}).get("rows", MISSING),
                "positives": (m or {}).get("positives", MISSING),
                "realized_auc": _fmt(real.get("roc_auc")),
                "estimated_auc": _fmt(est.get("roc_auc")),
                "estimated_auc_band": MISSING
                if low is None or high is None
                else f"{low:.3f}–{high:.3f}",
                "realized_brier": _fmt(real.get("brier"), 4),
                "estimated_brier": _fmt(est.get("brier"), 4),
                "note": "labels not in yet" if not real else "",
            }
        )
    return rows


def monitoring_artifact(
    summary: Mapping[str, Any], performance: Mapping[str, Any] | None = None
) -> ArtifactContent:
    """Markdown + table for one monitoring run.

    Args:
        summary: `monitoring.loop.run_report`'s answer (verdict, reasons, share, name, paths)
            or a drift JSON summary.
        performance: the window's `performance.json` content, if any.
    """
    name = str(summary.get("name") or Path(str(summary.get("json", "drift"))).stem)
    verdict = summary.get("verdict") or ("DRIFT" if summary.get("drift") else "no drift")
    reasons = list(summary.get("reasons") or [])
    window = (performance or {}).get("window", MISSING)
    decision = (performance or {}).get("decision") or {}
    reasons += [f"realized performance: {r}" for r in decision.get("reasons", [])]
    versions = _version_rows(performance)
    lines = [
        f"# Monitoring `{name}`: **{verdict}**",
        "",
        f"- weighted drift share: {_fmt(summary.get('share'))}",
        f"- window: {window}",
        f"- realized-performance drift: {_fmt(decision.get('realized_drift'))}",
        f"- report: `{summary.get('html', MISSING)}`",
        "",
        "## Reasons",
        *([f"- {r}" for r in reasons] or ["- nothing moved"]),
        "",
        "## Model versions",
        "| version | rows | realized AUC | estimated AUC (band) | realized Brier | "
        "estimated Brier |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r['model_version']} | {r['rows']} | {r.get('realized_auc', MISSING)} | "
            f"{r.get('estimated_auc', MISSING)} ({r.get('estimated_auc_band', MISSING)}) | "
            f"{r.get('realized_brier', MISSING)} | {r.get('estimated_brier', MISSING)} |"
            for r in versions
        ],
    ]
    common = {"report": name, "window": window, "verdict": verdict, "reasons": "; ".join(reasons)}
    return ArtifactContent(
        key=artifact_key("monitoring", report_series(name)),  # one key per series: versions
        markdown="\n".join(lines) + "\n",
        table=[{**common, **r} for r in versions],
        description=f"Monitoring {name}: {verdict}",
    )


def promotion_artifact(decision: Mapping[str, Any], model: str = "churn") -> ArtifactContent:
    """Markdown + table for one promotion decision (`training.registry.Decision` as a dict)."""
    action, version = str(decision.get("action", MISSING)), decision.get("version")
    metrics = dict(decision.get("metrics") or {})
    champion = dict(decision.get("champion_metrics") or {})
    names = sorted(set(metrics) | set(champion))
    table = [
        {
            "metric": k,
            "challenger": _fmt(metrics.get(k), 4),
            "champion": _fmt(champion.get(k), 4),
        }
        for k in names
    ] or [{"metric": MISSING, "challenger": MISSING, "champion": MISSING}]
    lines = [
        f"# Promotion `{model}`: **{action}** version {_fmt(version)}",
        "",
        f"- previous champion: {_fmt(decision.get('previous'))}",
        f"- reason: {decision.get('reason', MISSING)}",
        "",
        "| metric | challenger | champion |",
        "|---|---|---|",
        *[f"| {r['metric']} | {r['challenger']} | {r['champion']} |" for r in table],
    ]
    common = {
        "action": action,
        "version": _fmt(version),
        "previous": _fmt(decision.get("previous")),
    }
    return ArtifactContent(
        key=artifact_key("promotion", model),
        markdown="\n".join(lines) + "\n",
        table=[{**common, **r} for r in table],
        description=f"Promotion {model}: {action} {_fmt(version)}",
    )
