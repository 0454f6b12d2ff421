"""Choose the drift thresholds on TUNING seeds only (`benchmarks/drift_windows.py`).

Grid over the rule's knobs; keeps the settings with false alarms ≤ 5% and the highest minimum
power, and prints the plateau so a choice in its middle can go to `params.yaml` `drift:`.
`bench_drift.py` then measures the chosen thresholds on the REPORTED seeds.

Run: `python -m benchmarks.tune_drift` (writes benchmarks/tuning/drift.json; a tuning log, not a
result in the DESIGN.md contract, so it stays out of benchmarks/results/).
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

from benchmarks.drift_windows import SHIFTS, TUNING_SEEDS, collect

GRID = {
    "wasserstein_threshold": [0.04, 0.05, 0.06, 0.07, 0.08, 0.1],
    "psi_threshold": [0.002, 0.003, 0.005, 0.01],
    "alpha": [1e-2, 1e-3, 1e-4],
    "share_threshold": [0.02, 0.03, 0.04, 0.05, 0.06, 0.08, 0.1],
    "importance_mix": [0.0, 0.5, 1.0],
}


def main() -> None:
    from monitoring.decision import weights

    windows = collect(TUNING_SEEDS)
    cols = list(windows[0].table["column"])
    effect = np.array([w.table["effect"].to_numpy() for w in windows])
    p = np.array([w.table["p_value"].to_numpy() for w in windows])
    is_w = np.array([(w.table["measure"] == "wasserstein").to_numpy() for w in windows])
    scenario = np.array([w.scenario for w in windows])
    rows = []
    for mix in GRID["importance_mix"]:
        wt = np.array([weights(cols, w.importance, mix) for w in windows])
        for tw, tp, a in itertools.product(
            GRID["wasserstein_threshold"], GRID["psi_threshold"], GRID["alpha"]
        ):
            share = (wt * ((effect >= np.where(is_w, tw, tp)) & (p < a))).sum(1)
            for sh in GRID["share_threshold"]:
                flag = share >= sh
                power = {s: float(flag[scenario == s].mean()) for s in SHIFTS}
                rows.append(
                    {
                        "wasserstein_threshold": tw,
                        "psi_threshold": tp,
                        "alpha": a,
                        "share_threshold": sh,
                        "importance_mix": mix,
                        **{f"power_{s}": v for s, v in power.items()},
                        "min_power": min(power.values()),
                        "false_alarm_rate": float(flag[scenario == "baseline"].mean()),
                    }
                )
    ok = [r for r in rows if r["false_alarm_rate"] <= 0.05]
    ok.sort(key=lambda r: (-r["min_power"], r["false_alarm_rate"]))
    best = [r for r in ok if r["min_power"] == ok[0]["min_power"] and r["false_alarm_rate"] == 0]
    out = {"seeds": [TUNING_SEEDS.start, TUNING_SEEDS.stop], "best": ok[:1], "plateau": best}
    out_path = Path(__file__).parent / "tuning" / "drift.json"
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{len(best)} settings reach min power {ok[0]['min_power']:.3f} with 0 false alarms")
    for key in GRID:
        print(f"  {key}: {sorted({r[key] for r in best})}")


if __name__ == "__main__":
    main()
