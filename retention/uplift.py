"""Holdout-measured uplift per offer type, the truth it should recover, and offer guards.

**Measured uplift.** For each offer month ``t`` whose window ``[t, t + W months)`` has closed,
*treated* are the customers offered type ``o`` at ``t`` who are not in the holdout, and the
*holdout* are holdout customers (`paycycle.holdout`, hash of the id) at risk at ``t`` who got no
offer at ``t`` and are not under an earlier accepted offer (in production they get none; in the
simulator's randomised logging they were skipped at random, so they are a random control).
Retention is "not cancelled before ``t + W``". Pooled over months::

    uplift_o = retention(treated_o) − retention(holdout)
    CI       = uplift_o ± z · sqrt(r_T (1 − r_T) / n_T + r_H (1 − r_H) / n_H)

This is the intent-to-treat effect of *making* the offer (acceptance included), the quantity a
targeting decision needs.

**True uplift** (simulator only): for each treated row, the truth's monthly hazards ``h_k`` for
``k < W`` (last known value carried forward after churn) with the offer's odds multiplier
``m`` removed for acceptors (``h⁰``) and applied (``h¹``):
``q · (Π(1 − h¹_k) − Π(1 − h⁰_k))`` with ``q = P(accept)``, averaged over the treated rows.

**Guards** for the deployed policy (`guard_offers`): holdout customers get no offer, and a
customer offered anything in the last ``offer_cap_days`` gets none (frequency cap).
The offer policy itself (`inference/offers.py`) already ranks offers by the estimated treatment
effect (Wald/IV on the randomised logging), not by churn probability alone.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from inference.offers import OFFER_TYPES
from paycycle.config import RetentionParams
from paycycle.errors import DataError
from paycycle.holdout import in_holdout


def _z(confidence: float) -> float:
    from scipy.stats import norm

    return float(norm.ppf(0.5 + confidence / 2))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return np.log(p / (1 - p))


def _sig(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


def uplift_rows(
    events: Mapping[str, pd.DataFrame], params: RetentionParams, before: dt.date | str | None = None
) -> pd.DataFrame:
    """One row per (month, customer) in a treated or holdout group, with `retained`.

    Args:
        events: raw tables (`offers`, `subscriptions`, `customers`).
        params: holdout share/salt and the window.
        before: only windows closed by this day (default: the last offer month's data end).
    """
    offers, subs = events["offers"], events["subscriptions"]
    if offers.empty:
        raise DataError("offers: no logged offers to measure uplift on")
    W = params.uplift_window_months
    start = subs.set_index("customer_id")["start_date"]
    cancelled = subs.set_index("customer_id")["cancelled_at"]
    ids = start.index.to_numpy()
    hold = pd.Series(in_holdout(ids, params.holdout_share, params.holdout_salt), index=ids)
    last = pd.Timestamp(before) if before is not None else offers["offered_at"].max()
    accepted = offers.loc[offers["accepted"]]
    out = []
    for day in sorted(offers["offered_at"].unique()):
        day = pd.Timestamp(day)
        end = day + pd.DateOffset(months=W)
        if end > last + pd.DateOffset(months=1):
            continue
        at_risk = (start < day) & ~(cancelled < day)
        base = start.index[at_risk.to_numpy()]
        month = offers.loc[offers["offered_at"] == day].set_index("customer_id")
        under = accepted.loc[
            (accepted["offered_at"] < day)
            & (accepted["offered_at"] >= day - pd.DateOffset(months=W - 1)),
            "customer_id",
        ]
        retained = ~(cancelled.reindex(base) < end).to_numpy()
        offered = np.isin(base, month.index)
        is_hold = hold.reindex(base).to_numpy(bool)
        control = is_hold & ~offered & ~np.isin(base, under)
        treated = offered & ~is_hold
        group = np.where(treated, month["offer_type"].reindex(base).to_numpy(object), "holdout")
        keep = treated | control
        out.append(
            pd.DataFrame(
                {
                    "month": day,
                    "customer_id": base[keep],
                    "group": group[keep],
                    "accepted": month["accepted"].reindex(base[keep]).eq(True).to_numpy(),
                    "retained": retained[keep],
                }
            )
        )
    if not out:
        raise DataError(f"offers: no offer month with a closed {W}-month window")
    return pd.concat(out, ignore_index=True)


def measure_uplift(rows: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per offer type: n, retention of treated and holdout, uplift and its normal CI."""
    hold = rows.loc[rows["group"] == "holdout", "retained"].to_numpy(float)
    if len(hold) < 2:
        raise DataError("holdout: fewer than two holdout rows; raise retention.holdout_share")
    z = _z(confidence)
    r_h = hold.mean()
    table = []
    for o in OFFER_TYPES:
        t = rows.loc[rows["group"] == o, "retained"].to_numpy(float)
        r_t = t.mean() if len(t) else np.nan
        se = np.sqrt(r_t * (1 - r_t) / max(len(t), 1) + r_h * (1 - r_h) / len(hold))
        u = r_t - r_h
        table.append(
            {
                "offer_type": o,
                "n_treated": len(t),
                "n_holdout": len(hold),
                "retention_treated": r_t,
                "retention_holdout": r_h,
                "uplift": u,
                "ci_low": u - z * se,
                "ci_high": u + z * se,
            }
        )
    return pd.DataFrame(table).set_index("offer_type")


def true_uplift(rows: pd.DataFrame, truth_dir: Path, window_months: int) -> pd.Series:
    """The simulator's true intent-to-treat uplift per offer type on the treated rows."""
    from paycycle.tables import read_table

    treated = rows.loc[rows["group"] != "holdout"]
    hazard = read_table(truth_dir, "hazard").pivot(
        index="customer_id", columns="month", values="hazard"
    )
    hazard = hazard.sort_index(axis=1).ffill(axis=1)
    resp = read_table(truth_dir, "offer_response")
    q = resp.pivot(index="customer_id", columns="offer_type", values="p_accept")
    m = resp.pivot(index="customer_id", columns="offer_type", values="hazard_multiplier")
    months = list(hazard.columns)
    out = {}
    for o in OFFER_TYPES:
        part = treated.loc[treated["group"] == o]
        if part.empty:
            out[o] = np.nan
            continue
        vals = []
        for month, grp in part.groupby("month"):
            j = months.index(pd.Timestamp(month))
            cols = months[j : j + window_months]
            h = hazard.loc[grp["customer_id"], cols].to_numpy(float)
            if h.shape[1] < window_months:  # past the simulated months: hold the last hazard
                pad = np.repeat(h[:, -1:], window_months - h.shape[1], axis=1)
                h = np.hstack([h, pad])
            mult = m.loc[grp["customer_id"], o].to_numpy(float)[:, None]
            acc = grp["accepted"].to_numpy(bool)[:, None]
            h0 = np.where(acc, _sig(_logit(h) - np.log(mult)), h)
            h1 = _sig(_logit(h0) + np.log(mult))
            qi = q.loc[grp["customer_id"], o].to_numpy(float)
            vals.append(qi * ((1 - h1).prod(1) - (1 - h0).prod(1)))
        out[o] = float(np.concatenate(vals).mean())
    return pd.Series(out, name="true_uplift")


def uplift_report(
    events: Mapping[str, pd.DataFrame],
    params: RetentionParams,
    out_dir: Path,
    truth_dir: Path | None = None,
) -> pd.DataFrame:
    """Measure uplift (and, given the truth, check it) and write `uplift.json` + `uplift.md`.

    Returns:
        The table per offer type (with `true_uplift` and `covered` when `truth_dir` is given).
    """
    rows = uplift_rows(events, params)
    table = measure_uplift(rows, params.uplift_confidence)
    if truth_dir is not None:
        table["true_uplift"] = true_uplift(rows, truth_dir, params.uplift_window_months)
        table["covered"] = (table["ci_low"] <= table["true_uplift"]) & (
            table["true_uplift"] <= table["ci_high"]
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {
        "window_months": params.uplift_window_months,
        "confidence": params.uplift_confidence,
        "holdout_share": params.holdout_share,
        "offers": json.loads(table.reset_index().to_json(orient="records")),
    }
    (out_dir / "uplift.json").write_text(json.dumps(payload, indent=2) + "\n")
    lines = [
        f"# Offer uplift vs holdout ({params.uplift_window_months}-month retention)",
        "",
        f"Holdout share {params.holdout_share:.0%}; {params.uplift_confidence:.0%} normal CI.",
        "",
        "| offer | treated | holdout | uplift | CI | true | covered |",
        "|---|---:|---:|---:|---|---:|---|",
    ]
    for o, r in table.iterrows():
        true = f"{r['true_uplift']:+.4f}" if "true_uplift" in r else "–"
        cov = str(bool(r["covered"])) if "covered" in r else "–"
        lines.append(
            f"| {o} | {r['n_treated']} | {r['n_holdout']} | {r['uplift']:+.4f} | "
            f"[{r['ci_low']:+.4f}, {r['ci_high']:+.4f}] | {true} | {cov} |"
        )
    (out_dir / "uplift.md").write_text("\n".join(lines) + "\n")
    return table


def guard_offers(
    decisions: pd.DataFrame,
    history: pd.DataFrame,
    as_of: dt.date | str,
    params: RetentionParams,
) -> pd.DataFrame:
    """Drop offers to holdout customers and to customers offered within `offer_cap_days`.

    Args:
        decisions: the policy's rows (`customer_id`, `offer_type`; None = no offer).
        history: offers already made (`customer_id`, `offered_at`).
        as_of: the decision day.
        params: holdout and cap.

    Returns:
        `decisions` with `offer_type` set to None (and `reason` explained) where guarded.
    """
    out = decisions.copy()
    ids = out["customer_id"].to_numpy()
    hold = in_holdout(ids, params.holdout_share, params.holdout_salt)
    since = pd.Timestamp(as_of) - pd.Timedelta(days=params.offer_cap_days)
    recent = history.loc[
        (pd.to_datetime(history["offered_at"]) > since)
        & (pd.to_datetime(history["offered_at"]) <= pd.Timestamp(as_of)),
        "customer_id",
    ]
    capped = np.isin(ids, recent.to_numpy()) & ~hold
    has = out["offer_type"].notna().to_numpy()
    if "reason" not in out.columns:
        out["reason"] = ""
    out.loc[hold & has, "reason"] = "no offer: customer is in the retention holdout"
    out.loc[capped & has, "reason"] = (
        f"no offer: already offered within {params.offer_cap_days} days (frequency cap)"
    )
    out.loc[(hold | capped) & has, "offer_type"] = None
    if "expected_value" in out.columns:
        out.loc[(hold | capped) & has, "expected_value"] = 0.0
    return out
