"""The one result format every benchmark writes (DESIGN.md, "Benchmark results")."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def write_result(
    name: str, params: dict[str, Any], metrics: dict[str, float], goals: dict[str, str]
) -> Path:
    """Write `benchmarks/results/<name>.json` and return its path.

    Args:
        name: benchmark name (`simulator`, `churn`, ...).
        params: what was run (sizes, seeds).
        metrics: measured numbers; timings as side-by-side ratios plus absolute context.
        goals: metric key -> expression such as ">= 0.9".
    """
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    result = {
        "name": name,
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
        "params": params,
        "metrics": {k: (round(v, 6) if isinstance(v, float) else v) for k, v in metrics.items()},
        "goals": goals,
    }
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def goal_met(value: float, expression: str) -> bool:
    """Evaluate a goal such as '>= 0.9' or '<= 180' against a value."""
    op, _, target = expression.partition(" ")
    t = float(target)
    return {">=": value >= t, "<=": value <= t, ">": value > t, "<": value < t, "==": value == t}[
        op
    ]


@contextmanager
def timer() -> Iterator[dict[str, float]]:
    """`with timer() as t: ...` then `t["seconds"]`."""
    box: dict[str, float] = {}
    start = time.perf_counter()
    try:
        yield box
    finally:
        box["seconds"] = time.perf_counter() - start
