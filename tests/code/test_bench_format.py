"""Benchmark results follow the one contract in DESIGN.md, and the README table reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import common, run_all


def test_write_result_and_render(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    path = common.write_result("demo", {"n": 1}, {"ratio": 0.97, "rows": 10}, {"ratio": ">= 0.95"})
    result = json.loads(path.read_text())
    assert set(result) == {"name", "when", "machine", "params", "metrics", "goals"}
    assert set(result["machine"]) == {"cores", "python"}
    table = run_all.render_table(tmp_path)
    assert "| demo | `ratio` | 0.970 | >= 0.95 | yes |" in table


@pytest.mark.parametrize(
    ("value", "goal", "met"),
    [(1.0, ">= 0.9", True), (0.5, ">= 0.9", False), (170, "<= 180", True), (0, "== 0", True)],
)
def test_goal_met(value: float, goal: str, met: bool) -> None:
    assert common.goal_met(value, goal) is met


def test_committed_results_follow_the_contract() -> None:
    for path in common.RESULTS_DIR.glob("*.json"):
        result = json.loads(path.read_text())
        assert result["name"] == path.stem
        assert all(isinstance(v, int | float) for v in result["metrics"].values()), path
        for key in result["goals"]:
            assert key in result["metrics"], f"{path.name}: goal for unmeasured {key}"


def test_digest_has_one_row_per_goal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "RESULTS_DIR", tmp_path)
    common.write_result("demo", {}, {"ratio": 0.5, "rows": 10}, {"ratio": ">= 0.9"})
    readme = tmp_path / "project" / "README.md"
    readme.parent.mkdir()
    readme.write_text(f"intro\n{run_all.START}\nold\n{run_all.END}\noutro\n")
    run_all.update_readme(readme, tmp_path)
    digest = readme.read_text()
    assert "| demo | `ratio` | 0.500 | >= 0.9 | **no** |" in digest and "`rows`" not in digest
    assert digest.startswith("intro") and digest.endswith("outro\n")
    assert "| demo | `rows` | 10 |  |  |" in (tmp_path / "README.md").read_text()
