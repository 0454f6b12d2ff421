"""Choose the realized-performance rule's thresholds on TUNING seeds only.

Grid over `drift.performance_auc_drop` × `drift.performance_brier_rise` on baseline and
`concept_shift` windows (`benchmarks/performance_windows.py`, seeds `drift_windows.TUNING_SEEDS`
[:20]); keeps the pairs with false alarms ≤ 5% on baseline and the highest concept_shift power,
and prints that plateau so a pair in its middle goes to `params.yaml` `drift:`.
`bench_performance_monitoring.py` then measures the chosen pair on the REPORTED seeds.

Run: `python -m benchmarks.tune_performance` (writes benchmarks/tuning/performance.json).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from benchmarks.drift_windows import TUNING_SEEDS
from benchmarks.performance_windows import collect, fit_champion, frame

GRID = {
    "performance_auc_drop": [0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1],
    "performance_brier_rise": [0.002, 0.004, 0.006, 0.008, 0.01, 0.015, 0.02],
}
SEEDS = range(TUNING_SEEDS.start, TUNING_SEEDS.start + 20)


def main() -> None:
    from monitoring.decision import Thresholds

    w = frame(collect(SEEDS, ("baseline", "concept_shift"), fit_champion(), Thresholds()))
    auc_fall, brier_rise = w["ref_auc"] - w["auc"], w["brier"] - w["ref_brier"]
    base, shift = (w["scenario"] == "baseline").to_numpy(), (w["scenario"] == "concept_shift")
    rows = []
    for a, b in itertools.product(*GRID.values()):
        fired = ((auc_fall >= a) | (brier_rise >= b)).to_numpy()
        rows.append(
            {
                "performance_auc_drop": a,
                "performance_brier_rise": b,
                "power_concept_shift": float(fired[shift.to_numpy()].mean()),
                "false_alarm_rate": float(fired[base].mean()),
            }
        )
    ok = [r for r in rows if r["false_alarm_rate"] <= 0.05]
    best_power = max(r["power_concept_shift"] for r in ok)
    plateau = [r for r in ok if r["power_concept_shift"] == best_power]
    out = {
        "seeds": [SEEDS.start, SEEDS.stop],
        "brier_rise_baseline": np.quantile(brier_rise[base], [0.5, 0.95, 1.0]).tolist(),
        "brier_rise_concept_shift": np.quantile(brier_rise[shift], [0.0, 0.05, 0.5]).tolist(),
        "auc_fall_baseline": np.quantile(auc_fall[base], [0.5, 0.95, 1.0]).tolist(),
        "plateau": plateau,
    }
    path = Path(__file__).parent / "tuning" / "performance.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "plateau"}, indent=2))
    print(f"{len(plateau)} pairs reach power {best_power:.3f} with false alarms <= 5%")
    for key in GRID:
        print(f"  {key}: {sorted({r[key] for r in plateau})}")


if __name__ == "__main__":
    main()
