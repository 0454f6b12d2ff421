"""Simulator additions for retention: cards with expiry dates, trials, and retry-recovery truth.

Everything here is drawn from its own generator ``default_rng([seed, chunk, 1])`` *after* the
monthly loop of `paycycle.sim.simulator.simulate_chunk`, so the original draws and tables are
byte-identical to what they were before these tables existed. The new tables are derived so that
they agree with the ledger already written:

* **cards** (raw): card 0 is added at signup. Every first-attempt ``expired_card`` decline on day
  ``E`` means the card in use expired on the last day of the month before ``E``; the customer's
  next card is added on ``E``. The last card's expiry is drawn ``1 + ⌊48·u⌋`` months after the
  month it was added (or the simulation start); when that falls inside the simulated window
  (before the end and any cancellation) the customer replaced it in time, ``⌊20·u'⌋`` days before
  it expired (no charge failed), with a new card valid ``36 + ⌊24·u''⌋`` months more.
  ``expires_on`` is the last valid day (end of the expiry month).
* **trials** (raw): a share ``TRIAL_SHARE`` of customers who sign up inside the window started a
  ``TRIAL_DAYS``-day free trial that converted on their signup date (the first charge), so
  ``trial_end = signup_date``. Trials that did not convert are not simulated.
* **dunning** (truth): one row per invoice whose first charge failed, with the pre-drawn
  uniforms ``u_d01 … u_dNN`` (one per day after the failure, ``NN = RECOVERY_DAYS``) and the day
  the customer would replace the card if asked (``card_update_day``, NaN = never). A retry on day
  ``d`` that is the customer's ``k``-th attempt on this invoice (``k ≥ 1`` counts the failed
  first charge) succeeds iff ``u_d < retry_success_probability(code, failed_on + d, k)``, so any
  retry schedule's outcome on the same failures is determined (common random numbers).

Retry recovery truth (`retry_success_probability`): hard declines (``expired_card``,
``closed_account``, ``stolen_card``) never succeed on the same card; once the customer updates
the card, a charge succeeds with ``p = CARD_UPDATE_SUCCESS``. Soft declines::

    logit p = base_c + payday_c·payday(t) + friday_c·friday(t) − 0.5·weekend(t)
              − ATTEMPT_PENALTY·(k − 1)

with ``(base, payday, friday)`` = (−2.4, 1.8, 0.7) for ``insufficient_funds`` and
(−0.9, 0.2, 0.1) for ``processing_error``; ``payday(t)`` is 1 on the 1st, 2nd, 15th, 16th and
the last day of the month (salaries land), ``friday(t)`` on Fridays, ``weekend(t)`` on Saturdays
and Sundays. ``card_update_day = 1 + ⌊Exp(mean 6 days)⌋`` with probability 0.45, else never.

The processor's logged +1/+3/+7 retries in ``payments`` predate this truth and keep their
original fixed rates; the truth is the counterfactual a dunning policy is evaluated against.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from paycycle import catalog
from paycycle.calendar import as_days, month_end, payday, weekday

TRIAL_SHARE = 0.3
TRIAL_DAYS = 14
RECOVERY_DAYS = 60
CARD_UPDATE_SUCCESS = 0.95
CARD_UPDATE_SHARE = 0.45
ATTEMPT_PENALTY = 0.35
SOFT_RECOVERY = {  # code -> (base logit, payday bonus, friday bonus)
    "insufficient_funds": (-2.4, 1.8, 0.7),
    "processing_error": (-0.9, 0.2, 0.1),
}
WEEKEND_PENALTY = 0.5
U_COLUMNS = [f"u_d{d:02d}" for d in range(1, RECOVERY_DAYS + 1)]
CARD_COLUMNS = ["card_id", "customer_id", "added_on", "expires_on"]
TRIAL_COLUMNS = ["subscription_id", "customer_id", "trial_start", "trial_end"]


def retry_success_probability(
    code: np.ndarray | str, day: np.ndarray, attempts_so_far: np.ndarray | int
) -> np.ndarray:
    """True P(a retry on `day` succeeds) for a failed charge (module docstring).

    Args:
        code: decline code(s) of the failed first charge.
        day: date(s) of the retry.
        attempts_so_far: attempts already made on the invoice, the failed first one included.

    Returns:
        Probabilities broadcast over the inputs; 0 for hard declines.
    """
    code = np.asarray(code, dtype=object)
    d = as_days(day)
    base = np.full(np.broadcast(code, d).shape, -np.inf)
    pay = payday(d)
    wd = weekday(d)
    for name, (b, p_bonus, f_bonus) in SOFT_RECOVERY.items():
        logit = b + p_bonus * pay + f_bonus * (wd == 4) - WEEKEND_PENALTY * (wd >= 5)
        base = np.where(code == name, logit, base)
    logit = base - ATTEMPT_PENALTY * (np.asarray(attempts_so_far) - 1)
    with np.errstate(over="ignore"):
        return np.where(np.isfinite(logit), 1 / (1 + np.exp(-logit)), 0.0)


def retention_tables(
    rng: np.random.Generator,
    ids: np.ndarray,
    signup_date: np.ndarray,
    signup_month: np.ndarray,
    start: np.datetime64,
    end: np.datetime64,
    months: int,
    tables: dict[str, pd.DataFrame],
) -> dict[str, pd.DataFrame]:
    """Cards, trials and the dunning truth for one chunk (module docstring).

    Args:
        rng: the chunk's retention generator (`default_rng([seed, chunk, 1])`).
        ids, signup_date, signup_month: the chunk's customers (all of them, joined or not).
        start, end: first simulated day and the day after the last.
        months: simulated months.
        tables: the chunk's tables from the monthly loop (customers, subscriptions, invoices,
            payments).

    Returns:
        `cards`, `trials` and `truth/dunning`.
    """
    n = len(ids)
    u_trial, u_exp, u_upd, u_exp2 = (rng.random(n) for _ in range(4))
    pos0 = int(ids[0]) if n else 0
    joined = signup_month < months
    pays, subs, inv = tables["payments"], tables["subscriptions"], tables["invoices"]

    # --- cards ---
    first = pays.loc[(pays["attempt"] == 0) & (pays["decline_code"] == "expired_card")]
    ev = pd.DataFrame(
        {"customer_id": first["customer_id"].to_numpy(), "added_on": as_days(first["attempted_at"])}
    ).sort_values(["customer_id", "added_on"], kind="stable")
    ev["k"] = ev.groupby("customer_id").cumcount() + 1
    base = pd.DataFrame(
        {"customer_id": ids[joined], "added_on": as_days(signup_date[joined]), "k": 0}
    )
    cards = pd.concat([base, ev], ignore_index=True).sort_values(["customer_id", "k"])
    cards = cards.reset_index(drop=True)
    nxt = cards.groupby("customer_id")["added_on"].shift(-1)
    pos = cards["customer_id"].to_numpy() - pos0
    added = as_days(cards["added_on"])
    from_month = np.maximum(added.astype("datetime64[M]"), np.datetime64(start, "M"))
    drawn = month_end((from_month + 1 + (u_exp[pos] * 48).astype(int)).astype("datetime64[D]"))
    has_next = nxt.notna().to_numpy()
    nxt_day = as_days(nxt.fillna(pd.Timestamp(end)).to_numpy())
    expiry = np.where(has_next, nxt_day.astype("datetime64[M]").astype("datetime64[D]") - 1, drawn)
    cards["expires_on"] = expiry
    cancelled = subs.set_index("customer_id")["cancelled_at"].reindex(cards["customer_id"])
    stop = as_days(cancelled.fillna(pd.Timestamp(end)).to_numpy())
    renew = ~has_next & (expiry < np.minimum(stop, as_days(end)))
    extra = pd.DataFrame(
        {
            "customer_id": cards["customer_id"].to_numpy()[renew],
            "added_on": expiry[renew] - (u_upd[pos[renew]] * 20).astype(int),
            "k": cards["k"].to_numpy()[renew] + 1,
            "expires_on": month_end(
                (
                    expiry[renew].astype("datetime64[M]")
                    + 36
                    + (u_exp2[pos[renew]] * 24).astype(int)
                ).astype("datetime64[D]")
            ),
        }
    )
    cards = pd.concat([cards, extra], ignore_index=True).sort_values(["customer_id", "k"])
    cards["card_id"] = cards["customer_id"].to_numpy() * 100 + cards["k"].to_numpy()
    cards = cards[CARD_COLUMNS].reset_index(drop=True)
    for col in ("added_on", "expires_on"):
        cards[col] = as_days(cards[col])

    # --- trials ---
    trial = joined & (signup_month >= 0) & (u_trial < TRIAL_SHARE)
    trials = pd.DataFrame(
        {
            "subscription_id": ids[trial],
            "customer_id": ids[trial],
            "trial_start": as_days(signup_date[trial]) - TRIAL_DAYS,
            "trial_end": as_days(signup_date[trial]),
        },
        columns=TRIAL_COLUMNS,
    )

    # --- dunning truth: every invoice whose first charge failed ---
    failed = pays.loc[pays["attempt"] == 0].loc[lambda p: p["status"] == "failed"]
    m = len(failed)
    u = rng.random((m, RECOVERY_DAYS)).astype(np.float32)
    asks = rng.random(m) < CARD_UPDATE_SHARE
    wait = 1 + np.floor(rng.exponential(6.0, m))
    update_day = np.where(asks & (wait <= RECOVERY_DAYS), wait, np.nan)
    currency = inv.set_index("invoice_id")["currency"].reindex(failed["invoice_id"]).to_numpy()
    fx = np.array([catalog.FX.get(c, np.nan) for c in currency], dtype=float)
    dunning = pd.DataFrame(
        {
            "invoice_id": failed["invoice_id"].to_numpy(),
            "customer_id": failed["customer_id"].to_numpy(),
            "decline_code": failed["decline_code"].to_numpy(),
            "failed_on": as_days(failed["attempted_at"]),
            "amount": failed["amount"].to_numpy(float),
            "currency": currency,
            "amount_usd": np.round(failed["amount"].to_numpy(float) / fx, 2),
            "card_update_day": update_day,
        }
    )
    dunning = pd.concat([dunning, pd.DataFrame(u, columns=U_COLUMNS)], axis=1)
    return {"cards": cards, "trials": trials, "truth/dunning": dunning}
