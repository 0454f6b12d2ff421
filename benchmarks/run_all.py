"""`make bench`: run each `benchmarks/bench_*.py` in its own process, then rebuild the tables.

Each benchmark writes `benchmarks/results/<name>.json` (see `benchmarks/common.py`); the README's
digest (one row per goal) and the full table in `benchmarks/results/README.md` are generated only
from those files, so a figure in either is always one a benchmark measured.
`python -m benchmarks.run_all --only simulator,features` runs a subset; `--table-only` just
regenerates the tables.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import RESULTS_DIR, goal_met

ROOT = Path(__file__).resolve().parent.parent
START, END = "<!-- metrics:start -->", "<!-- metrics:end -->"


def discover() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in Path(__file__).parent.glob("bench_*.py"))


def render_table(results_dir: Path = RESULTS_DIR) -> str:
    """Markdown table of every metric with a goal, plus the other metrics, from the JSON files."""
    rows = ["| benchmark | metric | value | goal | met |", "|---|---|---|---|---|"]
    for path in sorted(results_dir.glob("*.json")):
        result = json.loads(path.read_text())
        goals = result.get("goals", {})
        for key, value in result["metrics"].items():
            goal = goals.get(key, "")
            met = ("yes" if goal_met(value, goal) else "**no**") if goal else ""
            shown = f"{value:,.3f}" if isinstance(value, float) else f"{value:,}"
            rows.append(f"| {result['name']} | `{key}` | {shown} | {goal} | {met} |")
        rows.append(f"| {result['name']} | _measured_ | {result['when']} | | |")
    return "\n".join(rows)


def render_digest(results_dir: Path = RESULTS_DIR) -> str:
    """One row per goal: the benchmark's figure, the goal and whether it is met."""
    rows = ["| benchmark | metric | value | goal | met |", "|---|---|---|---|---|"]
    for path in sorted(results_dir.glob("*.json")):
        result = json.loads(path.read_text())
        for key, goal in result.get("goals", {}).items():
            value = result["metrics"][key]
            met = "yes" if goal_met(value, goal) else "**no**"
            shown = f"{value:,.3f}" if isinstance(value, float) else f"{value:,}"
            rows.append(f"| {result['name']} | `{key}` | {shown} | {goal} | {met} |")
    return "\n".join(rows)


FULL_TABLE_HEADER = """# Benchmark results

Every metric of every benchmark, generated from the JSON files in this folder by `make bench`
(`python -m benchmarks.run_all --table-only` rebuilds it without re-running them). The project
README shows the digest: one row per goal.

"""


def update_readme(readme: Path = ROOT / "README.md", results_dir: Path = RESULTS_DIR) -> None:
    """Write the digest into the README between its markers and the full table beside the JSON."""
    text = readme.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    readme.write_text(f"{head}{START}\n{render_digest(results_dir)}\n{END}{tail}")
    (results_dir / "README.md").write_text(FULL_TABLE_HEADER + render_table(results_dir) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", help="comma-separated benchmark names")
    parser.add_argument("--table-only", action="store_true")
    args = parser.parse_args()
    failed = []
    if not args.table_only:
        names = args.only.split(",") if args.only else discover()
        for name in names:
            print(f"== bench_{name}", flush=True)
            start = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", f"benchmarks.bench_{name}"], cwd=ROOT)
            print(f"== bench_{name}: exit {done.returncode} in {time.perf_counter() - start:.0f} s")
            if done.returncode:
                failed.append(name)
    update_readme()
    print(render_digest())
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
