"""Dunning plans scored on the simulator's retry-recovery truth (`truth/dunning`).

Every failure row carries one pre-drawn uniform per day after the failure, so every plan is
evaluated on the same failures and the same luck (`paycycle/sim/retention.py`):

* a retry on day ``d`` that is attempt ``k`` on the invoice (``k ≥ 1`` counts the failed first
  charge) succeeds iff ``u_d < retry_success_probability(code, failed_on + d, k)``;
* a customer who replaces the card (hard declines; ``card_update_day``) is charged that day by
  every system, while its dunning is still open (day ≤ the plan's ``end_day``); the charge
  succeeds iff ``u_day < CARD_UPDATE_SUCCESS``. Blind retries before that day are attempts that
  cannot succeed.

Recovered revenue is the USD amount of the invoices recovered.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from paycycle.catalog import is_hard
from paycycle.sim.retention import (
    CARD_UPDATE_SUCCESS,
    RECOVERY_DAYS,
    U_COLUMNS,
    retry_success_probability,
)
from retention.dunning import DunningPlan

Planner = Callable[[str, object], DunningPlan]


@dataclass
class DunningOutcome:
    recovered: np.ndarray  # (n,) bool
    attempts: np.ndarray  # (n,) retries + update charges made
    recovered_day: np.ndarray  # (n,) day recovered, NaN if not

    def summary(self, amount_usd: np.ndarray) -> dict[str, float]:
        n = max(len(self.recovered), 1)
        return {
            "recovered_usd": float(amount_usd[self.recovered].sum()),
            "recovery_rate": float(self.recovered.mean()) if len(self.recovered) else 0.0,
            "attempts_per_failure": float(self.attempts.sum() / n),
        }


def evaluate_plans(failures: pd.DataFrame, planner: Planner) -> DunningOutcome:
    """Apply `planner(code, failed_on)` to every failure and score it on the truth.

    Args:
        failures: `truth/dunning` rows.
        planner: returns the `DunningPlan` for one failure.
    """
    n = len(failures)
    u = failures[U_COLUMNS].to_numpy(float)
    codes = failures["decline_code"].to_numpy(object)
    failed_on = failures["failed_on"].to_numpy().astype("datetime64[D]")
    update = failures["card_update_day"].to_numpy(float)
    hard = is_hard(codes)
    recovered = np.zeros(n, bool)
    attempts = np.zeros(n, np.int64)
    rec_day = np.full(n, np.nan)
    cache: dict[tuple[str, np.datetime64], DunningPlan] = {}
    for i in range(n):
        key = (codes[i], failed_on[i])
        plan = cache.get(key)
        if plan is None:
            plan = cache[key] = planner(codes[i], failed_on[i].astype(object))
        days = [d for d in plan.retry_days if 1 <= d <= RECOVERY_DAYS]
        upd = update[i] if hard[i] and np.isfinite(update[i]) else np.inf
        upd = int(upd) if upd <= min(plan.end_day, RECOVERY_DAYS) else None
        k = 1
        for d in days:
            if upd is not None and d >= upd:
                break
            k += 1
            attempts[i] += 1
            if hard[i]:
                continue
            p = retry_success_probability(codes[i], failed_on[i] + d, k - 1)
            if u[i, d - 1] < p:
                recovered[i], rec_day[i] = True, d
                break
        if not recovered[i] and upd is not None:
            attempts[i] += 1
            if u[i, upd - 1] < CARD_UPDATE_SUCCESS:
                recovered[i], rec_day[i] = True, upd
    return DunningOutcome(recovered, attempts, rec_day)
