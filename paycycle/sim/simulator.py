"""Subscription-business simulator with a written-down ground truth.

Every customer gets latent traits the models never see (engagement `e`, price sensitivity `s`,
card risk, usage need, add-on affinities). The simulation then steps month by month, vectorised
over customers, and writes what a billing system would record (``data/raw``) plus the truth that
generated it (``data/truth``), so every model can be scored against an oracle.

Formulas (month ``m``, everything observable is taken from month ``m-1`` i.e. before ``as_of``):

* usage units ``u = need · exp(0.25·z + 0.15·e) · scenario``; ``usage_pattern = 100·u / included``.
* active days ``~ Binomial(days, σ(0.9·e + 0.8 + 0.3·z))``.
* first payment attempt fails with ``p = card_risk`` (×5 in ``payment_outage`` for charges due
  in the first week of the shift month); soft declines recover on the retries at +1/+3/+7 days
  with p = .35/.30/.25, hard declines with p = .10 (the customer replaced the card).
* churn hazard ``h = σ(ℓ)`` with

  ``ℓ = -1.75 − 0.35·ln(1+tenure) + 0.45·min(fails₃, 4) + 1.6·unpaid − 1.3·min(r, 1.2)
  + 0.4·max(ln r, 0) + 0.35·e^{0.5 s}·ln(price/49) − 1.5·(active − 0.6) − 0.3·e + seg
  − 0.7·annual + 0.2·min(tickets, 5) + ln(offer multiplier) + 0.3·ε``

  where ``fails₃`` counts failed attempts in the last three months, ``unpaid`` says the last
  invoice ended failed, ``r = usage_pattern/100`` of last month, ``active`` is last month's share
  of active days, ``seg`` is +0.35/0/−0.3/−0.6 for consumer/smb/midmarket/enterprise and ``ε`` is
  N(0,1) noise nobody observes. ``h`` is written to ``truth/hazard`` per customer-month: it *is*
  P(churn within the month starting at ``month``), the oracle for a 30-day churn label.
* offers: each month a random 4% of customers at risk get a uniformly random offer (a logged
  randomised policy, so acceptance and uplift are identifiable). ``P(accept) = σ(a_o + …)`` and an
  accepted offer multiplies the hazard by ``m_o`` for three months; both are in
  ``truth/offer_response``.
* add-on adoption: with p = 0.04 a month a customer adopts one add-on drawn from
  softmax(1.5·affinity) over add-ons not owned; usage features ``feat_*`` are Poisson with rates
  ``∝ exp(0.9·affinity)``, so preferences are learnable but noisy. Plan changes: usage above 130%
  of the plan ⇒ upgrade with p = 0.3; below 25% ⇒ downgrade with p = 0.15.

Retention tables (``cards``, ``trials`` and the retry-recovery truth ``truth/dunning``) are
drawn afterwards from a separate generator; their formulas are in `paycycle.sim.retention`.

Scenarios change the months from ``shift_month`` (default: the last one) on, and consume no extra
randomness, so a scenario run equals the baseline run before the shift:
``price_shock`` prices +30%; ``usage_drop`` smb usage −40%; ``payment_outage`` failure
probability ×5 for charges due on days 1–7; ``segment_mix`` 8% of customers become new signups in
the shift month, 70% of them through the new ``affiliate`` channel and 70% consumers;
``concept_shift`` a competitor's cheaper plan: the churn logit gains
``CONCEPT_SHIFT_LOGIT·max(s, 0)``, so price-sensitive customers leave more often while every
observable input keeps its baseline distribution (``s`` is never observed, and only the churn
draw reads it): a shift in *why* customers leave that data drift cannot see, only realized
performance (`monitoring.performance`) can.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from paycycle import catalog
from paycycle.calendar import month_starts
from paycycle.errors import DataError
from paycycle.sim.retention import retention_tables

RAW_TABLES = (*catalog.EVENT_TABLES, *catalog.RETENTION_TABLES)  # written per chunk
TRUTH_TABLES = ("customers", "hazard", "offer_response", "dunning")
SEGMENT_LOGIT = np.array([0.35, 0.0, -0.3, -0.6])
ANNUAL_SHARE = np.array([0.15, 0.20, 0.35, 0.50])
NEED_BASE = np.array([600.0, 3_000.0, 15_000.0, 60_000.0])
OFFER_BASE = {
    "discount_10": -1.4,
    "discount_20": -0.8,
    "free_month": -0.9,
    "plan_change": -1.6,
    "addon_trial": -1.2,
}
OFFER_MULT = {
    "discount_10": 0.70,
    "discount_20": 0.55,
    "free_month": 0.60,
    "plan_change": 0.50,
    "addon_trial": 0.80,
}
CONCEPT_SHIFT_LOGIT = 1.2  # concept_shift: extra churn logit per unit of positive sensitivity
OFFER_RATE = 0.04
ADOPT_RATE = 0.04


@dataclass(frozen=True)
class SimSpec:
    """What to simulate. `shift_month` defaults to the last month."""

    customers: int
    months: int
    seed: int
    start_date: dt.date = dt.date(2025, 1, 1)
    scenario: str = "baseline"
    chunk_customers: int = 250_000
    shift_month: int | None = None

    def __post_init__(self) -> None:
        from paycycle.config import SCENARIOS

        if self.customers <= 0:
            raise DataError(f"customers: must be a positive integer, got {self.customers}")
        if not 2 <= self.months <= 120:
            raise DataError(f"months: must be between 2 and 120, got {self.months}")
        if self.scenario not in SCENARIOS:
            raise DataError(
                f"scenario: unknown {self.scenario!r}; choose one of {', '.join(SCENARIOS)}"
            )
        if self.shift_month is not None and not 0 <= self.shift_month < self.months:
            raise DataError(f"shift_month: must be in [0, {self.months}), got {self.shift_month}")

    @property
    def shift(self) -> int:
        return self.months - 1 if self.shift_month is None else self.shift_month


@dataclass
class SimSummary:
    spec: SimSpec
    rows: dict[str, int] = field(default_factory=dict)
    raw_dir: Path | None = None
    truth_dir: Path | None = None


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class _Customers:
    """Static draws for one chunk of customers: observable profile and latent truth."""

    def __init__(self, rng: np.random.Generator, spec: SimSpec, first_id: int, n: int) -> None:
        m0 = np.datetime64(spec.start_date, "M")
        self.id = np.arange(first_id, first_id + n, dtype=np.int64)
        countries = list(catalog.COUNTRIES)
        shares = np.array([catalog.COUNTRIES[c][2] for c in countries])
        self.country = rng.choice(len(countries), n, p=shares / shares.sum())
        self.segment = rng.choice(4, n, p=catalog.SEGMENT_SHARE)
        ch_share = np.array(catalog.CHANNEL_SHARE)
        self.channel = rng.choice(len(ch_share), n, p=ch_share / ch_share.sum())
        existing = rng.random(n) < 0.7
        tenure0 = np.minimum(rng.geometric(1 / 14, n) - 1, 60)
        new_month = rng.integers(0, spec.months, n)
        self.billing_day = rng.integers(1, 29, n)
        u_mix = rng.random((n, 3))
        if spec.scenario == "segment_mix":
            moved = existing & (u_mix[:, 0] < 0.08)
            existing = existing & ~moved
            new_month = np.where(moved, spec.shift, new_month)
            joined_late = ~existing & (new_month >= spec.shift)
            self.channel = np.where(joined_late & (u_mix[:, 1] < 0.7), 5, self.channel)
            self.segment = np.where(joined_late & (u_mix[:, 2] < 0.7), 0, self.segment)
        self.signup_month = np.where(existing, -tenure0 - 1, new_month)  # relative to start
        self.signup_date = (m0 + self.signup_month).astype("datetime64[D]") + (self.billing_day - 1)
        self.annual = rng.random(n) < ANNUAL_SHARE[self.segment]
        self.e = rng.standard_normal(n)
        self.s = rng.standard_normal(n)
        self.card_risk = np.clip(0.025 * np.exp(0.7 * rng.standard_normal(n)), 0.002, 0.4)
        self.need = NEED_BASE[self.segment] * np.exp(0.6 * rng.standard_normal(n))
        included = np.array([p[4] for p in catalog.PLANS], dtype=float)
        wanted = self.need * np.exp(0.5 * rng.standard_normal(n))
        self.tier0 = np.clip(np.searchsorted(included, wanted * 0.8), 0, 3)  # 0-based plan index
        seg_bias = np.array(
            [  # storage, support, analytics, api, sms
                [0.4, -0.3, -0.4, -0.6, 0.5],
                [0.0, 0.0, 0.2, 0.0, 0.2],
                [0.0, 0.4, 0.5, 0.4, -0.2],
                [0.2, 0.8, 0.4, 0.6, -0.4],
            ]
        )
        self.aff = seg_bias[self.segment] + 0.9 * rng.standard_normal((n, 5))
        self.owned0 = self.aff > 1.3
        # offer response truth, fixed per customer
        fit_bad = np.abs(np.log(self.need / included[self.tier0]))
        self.offer_p = {}
        self.offer_m = {}
        for o in catalog.OFFER_TYPES:
            z = OFFER_BASE[o] - 0.3 * self.e + 0.15 * rng.standard_normal(n)
            if o.startswith("discount") or o == "free_month":
                z = z + 0.8 * self.s
                mult = OFFER_MULT[o] ** np.clip(1 + 0.3 * self.s, 0.4, 1.8)
            elif o == "plan_change":
                z = z + 0.5 * fit_bad
                mult = np.where(fit_bad > 0.7, OFFER_MULT[o], 0.85)
            else:
                z = z + 0.4 * self.aff.max(axis=1)
                mult = np.full(n, OFFER_MULT[o])
            self.offer_p[o] = _sigmoid(z)
            self.offer_m[o] = mult


def simulate_chunk(spec: SimSpec, chunk: int, first_id: int, n: int) -> dict[str, pd.DataFrame]:
    """Simulate `n` customers with ids from `first_id`; returns raw and `truth/` tables."""
    rng = np.random.default_rng([spec.seed, chunk])
    c = _Customers(rng, spec, first_id, n)
    starts = month_starts(spec.start_date, spec.months)
    plans = catalog.plans_frame()
    included = plans["included_units"].to_numpy(float)
    price = plans["monthly_price"].to_numpy(float)
    addon_price = np.array([a[2] for a in catalog.ADDONS])
    currencies = [catalog.COUNTRIES[k][0] for k in catalog.COUNTRIES]
    fx = np.array([catalog.FX[cur] for cur in currencies])[c.country]
    codes = list(catalog.DECLINE_CODES)
    code_p = np.array([catalog.DECLINE_CODES[k][0] for k in codes])
    code_hard = np.array([catalog.DECLINE_CODES[k][1] for k in codes])

    tier = c.tier0.copy()
    owned = c.owned0.copy()
    churned_at = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
    alive = np.ones(n, dtype=bool)
    fails = np.zeros((n, 3), dtype=np.int64)  # failed attempts in the last three months
    unpaid = np.zeros(n, dtype=bool)
    ratio_last = c.need / included[tier]
    active_last = _sigmoid(0.9 * c.e + 0.8)
    tickets_last = np.zeros(n)
    offer_mult = np.ones(n)
    offer_left = np.zeros(n, dtype=np.int64)
    discount = np.zeros(n)
    free_month = np.zeros(n, dtype=bool)
    out: dict[str, list[pd.DataFrame]] = {
        k: [] for k in ("usage", "invoices", "payments", "offers", "adoptions", "hazard")
    }
    joins = c.signup_month < spec.months
    ci, aj = np.nonzero(c.owned0 & joins[:, None])
    out["adoptions"].append(
        pd.DataFrame(
            {
                "customer_id": c.id[ci],
                "adopted_at": c.signup_date[ci],
                "item": "addon:" + np.array(catalog.ADDON_NAMES, dtype=object)[aj],
                "kind": "signup",
            }
        )
    )
    for m in range(spec.months):
        d0, d1 = starts[m], starts[m + 1]
        days = int((d1 - d0).astype(int))
        shifted = m >= spec.shift
        present = alive & (c.signup_month <= m)
        at_risk = present & (c.signup_month < m)  # joined before this month
        # --- draws (always the same count, whatever the scenario) ---
        z_units, z_days = rng.standard_normal(n), rng.standard_normal(n)
        u_fail, u_code, u_retry = rng.random(n), rng.random(n), rng.random((n, 3))
        eps, u_churn, u_cday = rng.standard_normal(n), rng.random(n), rng.random(n)
        u_offer, u_otype, u_accept = rng.random(n), rng.random(n), rng.random(n)
        u_adopt, g_adopt, u_plan = rng.random(n), rng.gumbel(size=(n, 5)), rng.random(n)
        lam = np.exp(0.9 * c.aff)
        feats = rng.poisson(lam * np.array([5.0, 0.3, 3.0, 1.0, 20.0]))

        # --- offers made at the start of the month (random logging policy) ---
        offered = at_risk & (u_offer < OFFER_RATE) & (offer_left == 0)
        otype = np.minimum((u_otype * len(catalog.OFFER_TYPES)).astype(int), 4)
        p_acc = np.choose(otype, [c.offer_p[o] for o in catalog.OFFER_TYPES])
        accepted = offered & (u_accept < p_acc)
        mult = np.choose(otype, [c.offer_m[o] for o in catalog.OFFER_TYPES])
        offer_mult = np.where(accepted, mult, offer_mult)
        offer_left = np.where(accepted, 3, offer_left)
        discount = np.where(
            accepted & (otype == 0), 0.10, np.where(accepted & (otype == 1), 0.20, discount)
        )
        free_month = accepted & (otype == 2)
        fit_tier = np.clip(np.searchsorted(included, c.need * 0.8), 0, 3)
        tier = np.where(accepted & (otype == 3), fit_tier, tier)
        trial_pick = np.argmax(np.where(owned, -np.inf, c.aff), axis=1)
        trial = accepted & (otype == 4) & ~owned.all(axis=1)
        owned[np.flatnonzero(trial), trial_pick[trial]] = True
        names = np.array([p[1] for p in catalog.PLANS], dtype=object)
        changed = accepted & (otype == 3)
        offer_rows = [
            (
                "addon:" + np.array(catalog.ADDON_NAMES, dtype=object)[trial_pick[trial]],
                trial,
                "trial",
            ),
            ("plan:" + names[tier[changed]], changed, "plan_change"),
        ]
        if offered.any():
            idx = np.flatnonzero(offered)
            out["offers"].append(
                pd.DataFrame(
                    {
                        "offer_id": c.id[idx] * 1000 + m,
                        "customer_id": c.id[idx],
                        "offered_at": np.full(idx.size, d0),
                        "offer_type": np.array(catalog.OFFER_TYPES)[otype[idx]],
                        "cost": np.round(
                            price[tier[idx]]
                            * np.array([catalog.OFFERS[o][0] for o in catalog.OFFER_TYPES])[
                                otype[idx]
                            ],
                            2,
                        ),
                        "accepted": accepted[idx],
                    }
                )
            )

        # --- churn hazard from what was observable at d0 ---
        tenure = np.maximum(m - c.signup_month - 1, 0)
        r = np.clip(ratio_last, 1e-3, None)
        shock = 1.3 if spec.scenario == "price_shock" and shifted else 1.0
        monthly_usd = (price[tier] * shock) * np.where(
            c.annual, catalog.ANNUAL_MONTHS_CHARGED / 12, 1
        )
        logit = (
            -1.75
            - 0.35 * np.log1p(tenure)
            + 0.45 * np.minimum(fails.sum(1), 4)
            + 1.6 * unpaid
            - 1.3 * np.minimum(r, 1.2)
            + 0.4 * np.maximum(np.log(r), 0)
            + 0.35 * np.exp(0.5 * c.s) * np.log(monthly_usd / 49.0)
            - 1.5 * (active_last - 0.6)
            - 0.3 * c.e
            + SEGMENT_LOGIT[c.segment]
            - 0.7 * c.annual
            + 0.2 * np.minimum(tickets_last, 5)
            + np.log(offer_mult)
            + 0.3 * eps
        )
        if spec.scenario == "concept_shift" and shifted:
            logit = logit + CONCEPT_SHIFT_LOGIT * np.maximum(c.s, 0.0)
        hazard = _sigmoid(logit)
        idx = np.flatnonzero(at_risk)
        out["hazard"].append(
            pd.DataFrame(
                {
                    "customer_id": c.id[idx],
                    "month": np.full(idx.size, d0),
                    "hazard": hazard[idx].astype(np.float32),
                }
            )
        )
        churn = at_risk & (u_churn < hazard)
        churn_day = d0 + (u_cday * days).astype(np.int64)

        # --- usage of the month (partial for the churn month and the signup month) ---
        scen_usage = np.where(
            spec.scenario == "usage_drop" and shifted, np.where(c.segment == 1, 0.6, 1.0), 1.0
        )
        frac = np.ones(n)
        joined_now = present & (c.signup_month == m)
        frac = np.where(joined_now, (days - c.billing_day + 1) / days, frac)
        frac = np.where(churn, np.maximum((churn_day - d0).astype(int), 1) / days, frac)
        units = c.need * np.exp(0.25 * z_units + 0.15 * c.e) * scen_usage * frac
        active_days = rng.binomial(
            (frac * days).astype(int), _sigmoid(0.9 * c.e + 0.8 + 0.3 * z_days)
        )
        idx = np.flatnonzero(present)
        usage = pd.DataFrame(
            {
                "customer_id": c.id[idx],
                "month": np.full(idx.size, d0),
                "units": np.round(units[idx]).astype(np.int64),
                "active_days": active_days[idx].astype(np.int64),
                "included_units": included[tier[idx]].astype(np.int64),
            }
        )
        for j, (_, _, _, sig) in enumerate(catalog.ADDONS):
            col = sig if sig != "support_tickets" else "support_tickets"
            vals = feats[idx, j] + (np.where(unpaid[idx], 1, 0) if j == 1 else 0)
            usage[col] = (vals * frac[idx]).round().astype(np.int64)
        out["usage"].append(usage)

        # --- invoice and payment attempts ---
        bill_day = d0 + (c.billing_day - 1)
        billed_annual = c.annual & ((m - c.signup_month) % 12 == 0)
        billed = present & ~free_month & (~c.annual | billed_annual)
        billed &= ~(churn & (churn_day < bill_day))
        base = np.where(c.annual, price[tier] * catalog.ANNUAL_MONTHS_CHARGED, price[tier])
        addons_usd = (owned * addon_price).sum(1) * np.where(
            c.annual, catalog.ANNUAL_MONTHS_CHARGED, 1
        )
        amount = np.round((base * shock * (1 - discount) + addons_usd) * fx, 2)
        outage = spec.scenario == "payment_outage" and m == spec.shift
        p_fail = c.card_risk * np.where(outage & (c.billing_day <= 7), 5.0, 1.0)
        failed1 = billed & (u_fail < p_fail)
        code = np.minimum(np.searchsorted(np.cumsum(code_p), u_code), len(codes) - 1)
        hard = code_hard[code]
        recover_p = np.where(hard[:, None], 0.10, np.array([0.35, 0.30, 0.25])[None, :])
        ok_retry = u_retry < recover_p
        first_ok = np.where(ok_retry.any(1), ok_retry.argmax(1), -1)  # retry index that succeeds
        n_attempts = np.where(failed1, np.where(first_ok >= 0, first_ok + 2, 4), 1)
        failed_attempts = np.where(failed1, n_attempts - (first_ok >= 0), 0)
        status = np.where(~failed1, "paid", np.where(first_ok >= 0, "retried", "failed"))
        retry_offsets = np.array((0,) + catalog.RETRY_DAYS)
        paid_at = np.where(
            ~failed1,
            bill_day,
            np.where(first_ok >= 0, bill_day + retry_offsets[first_ok + 1], np.datetime64("NaT")),
        )
        idx = np.flatnonzero(billed)
        inv_id = c.id[idx] * 1000 + m
        out["invoices"].append(
            pd.DataFrame(
                {
                    "invoice_id": inv_id,
                    "customer_id": c.id[idx],
                    "subscription_id": c.id[idx],
                    "period_start": bill_day[idx],
                    "due_date": bill_day[idx],
                    "amount": amount[idx],
                    "currency": np.array(currencies)[c.country[idx]],
                    "status": status[idx],
                    "paid_at": paid_at[idx],
                    "attempts": n_attempts[idx].astype(np.int64),
                }
            )
        )
        att = n_attempts[idx]
        rep = np.repeat(np.arange(idx.size), att)
        k = np.arange(rep.size) - np.repeat(np.cumsum(att) - att, att)
        succeeded = (k == att[rep] - 1) & (status[idx][rep] != "failed")
        out["payments"].append(
            pd.DataFrame(
                {
                    "payment_id": inv_id[rep] * 10 + k,
                    "invoice_id": inv_id[rep],
                    "customer_id": c.id[idx][rep],
                    "attempt": k.astype(np.int64),
                    "attempted_at": bill_day[idx][rep] + retry_offsets[k],
                    "amount": amount[idx][rep],
                    "status": np.where(succeeded, "paid", "failed"),
                    "decline_code": np.where(
                        succeeded, None, np.array(codes, dtype=object)[code[idx][rep]]
                    ),
                }
            )
        )

        # --- adoptions: add-ons and plan changes ---
        adopt = present & ~churn & (u_adopt < ADOPT_RATE) & ~owned.all(axis=1)
        pick = np.argmax(np.where(owned, -np.inf, 1.5 * c.aff + g_adopt), axis=1)
        rows = offer_rows + [
            ("addon:" + np.array(catalog.ADDON_NAMES, dtype=object)[pick[adopt]], adopt, "addon")
        ]
        owned[np.flatnonzero(adopt), pick[adopt]] = True
        ratio_now = units / np.maximum(frac, 1e-9) / included[tier]
        up = present & ~churn & (ratio_now > 1.3) & (tier < 3) & (u_plan < 0.3)
        down = present & ~churn & (ratio_now < 0.25) & (tier > 0) & (u_plan < 0.15)
        tier = tier + up - down
        rows += [
            ("plan:" + names[tier[up]], up, "upgrade"),
            ("plan:" + names[tier[down]], down, "downgrade"),
        ]
        for item, mask, kind in rows:
            if mask.any():
                day = (
                    0
                    if kind in ("trial", "plan_change")
                    else (u_cday[mask] * days).astype(np.int64)
                )
                out["adoptions"].append(
                    pd.DataFrame(
                        {
                            "customer_id": c.id[mask],
                            "adopted_at": d0 + day,
                            "item": item,
                            "kind": kind,
                        }
                    )
                )

        # --- carry state to next month ---
        churned_at = np.where(churn, churn_day, churned_at)
        alive &= ~churn
        fails = np.column_stack([fails[:, 1:], failed_attempts])
        unpaid = np.where(billed, status == "failed", unpaid & present)
        ratio_last = np.where(present, ratio_now, ratio_last)
        active_last = np.where(
            present, active_days / max(days, 1) / np.maximum(frac, 1e-9), active_last
        )
        tickets_last = np.where(present, feats[:, 1], tickets_last)
        offer_left = np.maximum(offer_left - 1, 0)
        offer_mult = np.where(offer_left > 0, offer_mult, 1.0)
        discount = np.where(offer_left > 0, discount, 0.0)

    end = starts[-1]
    joined = c.signup_month < spec.months
    cancelled = ~np.isnat(churned_at)
    months_since = (spec.months - c.signup_month) % 12
    next_annual = (
        np.datetime64(spec.start_date, "M")
        + spec.months
        + np.where(months_since == 0, 0, 12 - months_since)
    ).astype("datetime64[D]")
    next_charge = np.where(c.annual, next_annual + (c.billing_day - 1), end + (c.billing_day - 1))
    next_charge = np.where(cancelled, np.datetime64("NaT"), next_charge)
    status = np.where(cancelled, "cancelled", np.where(unpaid, "past_due", "active"))
    country_codes = np.array(list(catalog.COUNTRIES), dtype=object)
    idx = np.flatnonzero(joined)
    customers = pd.DataFrame(
        {
            "customer_id": c.id[idx],
            "signup_date": c.signup_date[idx],
            "country": country_codes[c.country[idx]],
            "currency": np.array(currencies, dtype=object)[c.country[idx]],
            "locale": np.array([catalog.COUNTRIES[k][1] for k in catalog.COUNTRIES], dtype=object)[
                c.country[idx]
            ],
            "email": np.char.add(
                np.char.add("customer", c.id[idx].astype(str)), "@example.com"
            ).astype(object),
            "acquisition_channel": np.array(catalog.CHANNELS, dtype=object)[c.channel[idx]],
            "segment": np.array(catalog.SEGMENTS, dtype=object)[c.segment[idx]],
        }
    )
    addon_names = np.array(catalog.ADDON_NAMES)
    subscriptions = pd.DataFrame(
        {
            "subscription_id": c.id[idx],
            "customer_id": c.id[idx],
            "plan_id": plans["plan_id"].to_numpy()[tier[idx]],
            "cycle": np.where(c.annual[idx], "annual", "monthly").astype(object),
            "start_date": c.signup_date[idx],
            "billing_day": c.billing_day[idx].astype(np.int64),
            "status": status[idx].astype(object),
            "next_charge_at": next_charge[idx],
            "renews_at": next_charge[idx],
            "cancelled_at": churned_at[idx],
            "addons": [",".join(addon_names[row]) for row in owned[idx]],
        }
    )
    truth_customers = pd.DataFrame(
        {
            "customer_id": c.id[idx],
            "engagement": c.e[idx],
            "price_sensitivity": c.s[idx],
            "card_risk": c.card_risk[idx],
            "usage_need": c.need[idx],
            **{f"pref_{a}": c.aff[idx, j] for j, a in enumerate(catalog.ADDON_NAMES)},
        }
    )
    offer_response = pd.concat(
        [
            pd.DataFrame(
                {
                    "customer_id": c.id[idx],
                    "offer_type": o,
                    "p_accept": c.offer_p[o][idx],
                    "hazard_multiplier": c.offer_m[o][idx],
                }
            )
            for o in catalog.OFFER_TYPES
        ],
        ignore_index=True,
    )

    def cat(name: str, columns: list[str]) -> pd.DataFrame:
        return (
            pd.concat(out[name], ignore_index=True) if out[name] else pd.DataFrame(columns=columns)
        )

    adoptions = cat("adoptions", ["customer_id", "adopted_at", "item", "kind"])
    adoptions = adoptions.sort_values(["customer_id", "adopted_at", "item"], kind="stable")
    adoptions = adoptions.drop_duplicates(["customer_id", "adopted_at", "item"]).reset_index(
        drop=True
    )
    tables = {
        "customers": customers,
        "subscriptions": subscriptions,
        "invoices": cat("invoices", []),
        "payments": cat("payments", []),
        "usage": cat("usage", []),
        "offers": cat(
            "offers", ["offer_id", "customer_id", "offered_at", "offer_type", "cost", "accepted"]
        ),
        "adoptions": adoptions,
        "truth/customers": truth_customers,
        "truth/hazard": cat("hazard", []),
        "truth/offer_response": offer_response,
    }
    # retention tables (cards, trials, retry-recovery truth) come from their own generator so
    # that every draw above, and so every table above, is unchanged by them
    tables |= retention_tables(
        np.random.default_rng([spec.seed, chunk, 1]),
        c.id,
        c.signup_date,
        c.signup_month,
        starts[0],
        end,
        spec.months,
        tables,
    )
    return tables


def _write(df: pd.DataFrame, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    for col in df.columns:  # dates are day-resolution timestamps in the contract
        if str(df[col].dtype).startswith("datetime64"):
            df[col] = df[col].astype("datetime64[ms]")
    table = pa.Table.from_pandas(df, preserve_index=False).replace_schema_metadata(None)
    pq.write_table(table, path, compression="zstd")


def simulate(
    spec: SimSpec,
    raw_dir: Path,
    truth_dir: Path,
    progress: Callable[[int, int], None] | None = None,
) -> SimSummary:
    """Simulate `spec` and write chunked Parquet under `raw_dir` and `truth_dir`.

    Args:
        spec: sizes, seed and scenario.
        raw_dir: where the observable tables go (one folder per table, `part-NNNNN.parquet`).
        truth_dir: where the latent truth goes; never read by feature code.
        progress: called with (customers done, customers total) after each chunk.

    Returns:
        Row counts per table. Same spec ⇒ byte-identical files.
    """
    for d in (raw_dir, truth_dir):
        for table in set(RAW_TABLES) | set(TRUTH_TABLES) | {"plans", "addons"}:
            for old in (d / table).glob("part-*.parquet"):
                old.unlink()
    summary = SimSummary(spec=spec, raw_dir=raw_dir, truth_dir=truth_dir)
    _write(catalog.plans_frame(), raw_dir / "plans" / "part-00000.parquet")
    _write(catalog.addons_frame(), raw_dir / "addons" / "part-00000.parquet")
    done = 0
    for chunk, first in enumerate(range(0, spec.customers, spec.chunk_customers)):
        n = min(spec.chunk_customers, spec.customers - first)
        tables = simulate_chunk(spec, chunk, first + 1, n)
        for name, df in tables.items():
            base = (
                truth_dir / name.removeprefix("truth/")
                if name.startswith("truth/")
                else raw_dir / name
            )
            key = name if name.startswith("truth/") else name
            summary.rows[key] = summary.rows.get(key, 0) + len(df)
            _write(df, base / f"part-{chunk:05d}.parquet")
        done += n
        if progress:
            progress(done, spec.customers)
    manifest = {
        "spec": {
            **asdict(spec),
            "start_date": spec.start_date.isoformat(),
            "shift_month": spec.shift,
        },
        "rows": dict(sorted(summary.rows.items())),
    }
    (raw_dir / "_manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    (truth_dir / "scenario.json").write_text(
        json.dumps(
            {
                "scenario": spec.scenario,
                "shift_month": spec.shift,
                "shift_date": str(month_starts(spec.start_date, spec.months)[spec.shift]),
            },
            indent=2,
        )
        + "\n"
    )
    return summary
