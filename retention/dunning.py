"""Decline-aware dunning: which failed charges to retry, and when.

Rules (plain functions, no I/O):

* **Hard declines** (`expired_card`, `closed_account`, `stolen_card`; `paycycle.catalog`) are
  never retried on the same card: the customer gets a notice with a signed "update payment
  method" link (`notify.links`) and is charged once, when a new card is added.
* **Soft declines** are retried on the days most likely to succeed, by a payday rule: score
  ``2·payday + 1·friday − 1·weekend − 0.02·d`` for each day ``d`` after the failure (payday =
  the 1st, 2nd, 15th, 16th or last day of the month, when salaries land; Friday is the common
  weekly payday). The best ``max_retries`` days within ``max_days`` that are at least
  ``min_gap_days`` apart are taken, in date order. ``processing_error`` (a transient glitch) is
  retried the next day first.
* When the last retry fails, or ``max_days`` pass, dunning ends with ``end_action`` (pause or
  cancel) from `params.yaml` (`dunning`).

Two fixed baselines for comparison: Stripe-like (8 retries within 2 weeks, hard declines never
retried) and Paddle-like (7 retries over 30 days, every decline). Evaluation against the
simulator's recovery truth is in `retention/dunning_eval.py`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from paycycle.calendar import payday, weekday
from paycycle.catalog import is_hard
from paycycle.config import DunningParams

STRIPE_LIKE_DAYS = (1, 2, 4, 6, 8, 10, 12, 14)
PADDLE_LIKE_DAYS = (1, 3, 5, 10, 15, 22, 30)
TRANSIENT = "processing_error"


@dataclass(frozen=True)
class DunningPlan:
    """What to do after one failed charge."""

    retry_days: tuple[int, ...]  # days after the failure on which to retry the same card
    ask_new_card: bool  # send the update-payment-method link and charge when a card is added
    end_day: int  # dunning stops this many days after the failure
    end_action: str  # pause | cancel when still unpaid then


def day_scores(failed_on: dt.date, max_days: int) -> np.ndarray:
    """Rule score of retrying on each day 1..max_days after `failed_on` (module docstring)."""
    days = np.datetime64(failed_on, "D") + np.arange(1, max_days + 1)
    pay = payday(days)
    wd = weekday(days)
    return 2.0 * pay + 1.0 * (wd == 4) - 1.0 * (wd >= 5) - 0.02 * np.arange(1, max_days + 1)


def pick_days(scores: np.ndarray, n: int, min_gap: int, first: tuple[int, ...] = ()) -> list[int]:
    """The `n` best-scoring days (1-based), pairwise at least `min_gap` apart, in date order."""
    chosen = list(first[:n])
    for i in np.argsort(-scores, kind="stable"):
        if len(chosen) >= n:
            break
        d = int(i) + 1
        if all(abs(d - c) >= min_gap for c in chosen):
            chosen.append(d)
    return sorted(chosen)


def plan_dunning(code: str, failed_on: dt.date, params: DunningParams) -> DunningPlan:
    """The retry plan for one failed charge.

    Args:
        code: the decline code of the failed charge.
        failed_on: the day it failed.
        params: `dunning` caps (retries, days, gap) and end action.

    Returns:
        Retry days (empty for hard declines), whether to ask for a new card, and the end.
    """
    if bool(is_hard(code)):
        return DunningPlan((), True, params.max_days, params.end_action)
    first = (1,) if code == TRANSIENT else ()
    days = pick_days(
        day_scores(failed_on, params.max_days), params.max_retries, params.min_gap_days, first
    )
    return DunningPlan(tuple(days), False, params.max_days, params.end_action)


def fixed_plan(days: tuple[int, ...], retry_hard: bool, code: str) -> DunningPlan:
    """A fixed-schedule baseline's plan (hard declines skipped unless `retry_hard`)."""
    hard = bool(is_hard(code))
    retries = () if hard and not retry_hard else days
    return DunningPlan(tuple(retries), hard, max(days), "cancel")


def stripe_like(code: str, failed_on: dt.date) -> DunningPlan:
    """8 retries within 2 weeks; hard declines never retried."""
    return fixed_plan(STRIPE_LIKE_DAYS, False, code)


def paddle_like(code: str, failed_on: dt.date) -> DunningPlan:
    """7 retries over 30 days, whatever the decline, then cancel."""
    return fixed_plan(PADDLE_LIKE_DAYS, True, code)
