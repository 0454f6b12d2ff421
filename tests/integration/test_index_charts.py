"""The index's trend charts are drawn in a real browser (headless Chromium), issue 17 item 6."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from monitoring.index_page import write_index
from tests.monitoring_files import performance, write_window

# Appended to a copy of the page: writes each SVG path's rendered box into the DOM we dump.
MEASURE = """<script>
const boxes = [...document.querySelectorAll('svg path')].map(p => {
  const r = p.getBoundingClientRect();
  return {cls: p.getAttribute('class'), series: p.dataset.series || '', w: r.width, h: r.height};
});
document.body.setAttribute('data-boxes', JSON.stringify(boxes));
</script>"""


def _chromium(*args: str) -> str:
    out = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--window-size=1400,1200", *args],
        check=True, capture_output=True, text=True, timeout=150,
    )  # fmt: skip
    return out.stdout


@pytest.mark.skipif(shutil.which("chromium") is None, reason="chromium is not installed")
@pytest.mark.timeout(180)
def test_trend_charts_render_in_headless_chromium(tmp_path: Path) -> None:
    shares = [0.01, 0.02, 0.09, 0.03]
    aucs = [(0.81, 0.80), (0.80, 0.81), (0.70, 0.79), (0.78, 0.78)]
    for month, share, (auc, est) in zip((2, 3, 4, 5), shares, aucs, strict=True):
        perf = performance(f"2026-{month:02d}", auc, est, version="3" if month < 4 else "4")
        write_window(tmp_path, f"2026-{month + 1:02d}-01", share, perf)
    index = write_index(tmp_path)
    probe = tmp_path / "probe.html"
    probe.write_text(index.read_text().replace("</body>", MEASURE + "</body>"))
    dom = _chromium("--virtual-time-budget=5000", "--dump-dom", probe.as_uri())
    found = re.search(r"data-boxes=\"([^\"]*)\"", dom)
    assert found, "the page's script did not run"
    boxes = json.loads(found.group(1).replace("&quot;", '"'))
    series = {b["series"]: b for b in boxes if b["cls"] == "series"}
    assert set(series) == {"daily", "v3 realized", "v3 estimated", "v4 realized", "v4 estimated"}
    for name, box in series.items():
        assert box["w"] > 50 and box["h"] > 0, name  # drawn across windows, not collapsed
    assert any(b["cls"] == "band" and b["w"] > 0 and b["h"] > 0 for b in boxes)
    png = tmp_path / "index.png"
    _chromium(f"--screenshot={png}", index.as_uri())
    from PIL import Image

    pixels = Image.open(png).convert("RGB").getdata()
    assert sum(1 for p in pixels if p == (0x15, 0x65, 0xC0)) > 200  # the first series' blue
