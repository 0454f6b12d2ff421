"""A promoter process for the promotion-history race test (run as a script, not collected).

Usage: python history_worker.py ROOT TRACKING_URI LABEL COUNT GO_FILE
Waits until GO_FILE exists (so two workers start together), then records COUNT decisions for
`paycycle-churn` through `training.registry.record_decision`, the call every promotion ends in.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from paycycle import config  # noqa: E402
from training.registry import REFUSED, Decision, record_decision  # noqa: E402


def main() -> None:
    root, uri, label, count, go = sys.argv[1:6]
    settings = config.load(root=Path(root), mlflow_tracking_uri=uri)
    while not Path(go).exists():
        time.sleep(0.01)
    for i in range(int(count)):
        decision = Decision(
            "paycycle-churn", REFUSED, None, None, f"{label}-{i}", {"auc": 0.7}, who=label
        )
        record_decision(settings, decision)
    print(f"{label} recorded {count}")


if __name__ == "__main__":
    main()
