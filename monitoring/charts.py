"""Inline SVG line charts for the report index: self-contained (no script, no CDN), so the page
opens from a file, a CI artefact or an MLflow run the same way.

A chart is a list of `Series` over a shared, ordered list of x labels (monitoring windows). Each
series is one `<path class="series">` plus a dot per point (a one-point series is still visible);
an optional band (`low`, `high` per point) is a translucent `<path class="band">`, an optional
horizontal rule (a threshold) a dashed line.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 56, 150, 28, 44
PALETTE = ("#1565c0", "#c62828", "#2e7d32", "#ef6c00", "#6a1b9a", "#00838f", "#5d4037")


@dataclass(frozen=True)
class Series:
    """One line: y per x label (None = no value in that window), optional band, dashed or not."""

    name: str
    points: dict[str, float | None]
    band: dict[str, tuple[float, float]] = field(default_factory=dict)
    dashed: bool = False
    color: str | None = None


def _scale(lo: float, hi: float) -> tuple[float, float]:
    if hi - lo < 1e-9:
        return lo - 0.05, hi + 0.05
    pad = (hi - lo) * 0.08
    return lo - pad, hi + pad


def line_chart(
    title: str,
    xs: Sequence[str],
    series: Sequence[Series],
    *,
    y_label: str = "",
    rule: float | None = None,
    rule_label: str = "",
) -> str:
    """One `<figure>` with an SVG line chart (empty string when there is nothing to draw)."""
    values = [v for s in series for v in s.points.values() if v is not None]
    values += [b for s in series for pair in s.band.values() for b in pair]
    if not xs or not values:
        return ""
    ys = values + ([rule] if rule is not None else [])
    lo, hi = _scale(min(ys), max(ys))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(xs) - 1, 1)
    col = {x: LEFT + (i * step if len(xs) > 1 else plot_w / 2) for i, x in enumerate(xs)}

    def y_of(v: float) -> float:
        return TOP + plot_h * (1 - (v - lo) / (hi - lo))

    parts = [
        f'<line x1="{LEFT}" y1="{TOP + plot_h}" x2="{LEFT + plot_w}" y2="{TOP + plot_h}" '
        'stroke="#999"/>',
        f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + plot_h}" stroke="#999"/>',
    ]
    for v in (lo, (lo + hi) / 2, hi):
        parts.append(
            f'<text x="{LEFT - 6}" y="{y_of(v) + 4:.1f}" text-anchor="end" font-size="11">'
            f"{v:.3f}</text>"
        )
    every = max(1, len(xs) // 8)
    for i, x in enumerate(xs):
        if i % every == 0:
            parts.append(
                f'<text x="{col[x]:.1f}" y="{TOP + plot_h + 16}" text-anchor="middle" '
                f'font-size="11">{html.escape(x)}</text>'
            )
    if rule is not None:
        y = y_of(rule)
        parts.append(
            f'<line class="rule" x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + plot_w}" y2="{y:.1f}" '
            'stroke="#777" stroke-dasharray="4 4"/>'
            f'<text x="{LEFT + plot_w + 4}" y="{y + 4:.1f}" font-size="11">'
            f"{html.escape(rule_label)}</text>"
        )
    for i, s in enumerate(series):
        color = s.color or PALETTE[i % len(PALETTE)]
        band = [x for x in xs if x in s.band]
        if band:
            upper = [f"{col[x]:.1f},{y_of(s.band[x][1]):.1f}" for x in band]
            lower = [f"{col[x]:.1f},{y_of(s.band[x][0]):.1f}" for x in reversed(band)]
            parts.append(
                f'<path class="band" d="M{" L".join(upper + lower)} Z" fill="{color}" '
                'fill-opacity="0.15" stroke="none"/>'
            )
        pts = [(col[x], y_of(v)) for x in xs if (v := s.points.get(x)) is not None]
        if not pts:
            continue
        dash = ' stroke-dasharray="6 3"' if s.dashed else ""
        d = " L".join(f"{px:.1f},{py:.1f}" for px, py in pts)
        parts.append(
            f'<path class="series" data-series="{html.escape(s.name)}" d="M{d}" fill="none" '
            f'stroke="{color}" stroke-width="2"{dash}/>'
        )
        parts += [f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3" fill="{color}"/>' for px, py in pts]
        ly = TOP + 14 * i + 6
        parts.append(
            f'<text x="{LEFT + plot_w + 4}" y="{ly}" font-size="11" fill="{color}">'
            f"{html.escape(s.name)}</text>"
        )
    return (
        f'<figure class="chart"><figcaption>{html.escape(title)}</figcaption>'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{html.escape(title)}">'
        f'<text x="12" y="{TOP + plot_h / 2}" font-size="11" '
        f'transform="rotate(-90 12 {TOP + plot_h / 2})" text-anchor="middle">'
        f"{html.escape(y_label)}</text>{''.join(parts)}</svg></figure>"
    )
