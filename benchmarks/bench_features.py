"""Point-in-time feature building on 1M customers × 12 months.

Run: `python -m benchmarks.bench_features [--customers N]`.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from benchmarks.common import timer, write_result
from features.build import build_features, load_events
from paycycle.sim.simulator import SimSpec, simulate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        simulate(SimSpec(customers=args.customers, months=12, seed=1), raw, Path(tmp) / "truth")
        with timer() as load:
            events = load_events(raw)
        with timer() as build:
            frame = build_features(events, "2025-12-01")
    rows = len(frame)
    path = write_result(
        "features",
        {"customers": args.customers, "months": 12, "as_of": "2025-12-01"},
        {
            "rows_per_s_1m": rows / build["seconds"],
            "rows": rows,
            "build_seconds": build["seconds"],
            "load_seconds": load["seconds"],
        },
        {"rows_per_s_1m": ">= 50000"},
    )
    print(path.read_text())


if __name__ == "__main__":
    main()
