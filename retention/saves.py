"""Cancel-intent flow: match an offer to the stated reason, record it, and count saves.

**Offer matching.** For a stated reason ``r`` and candidate offer ``o`` the expected value is
``EV = P(accept | r, o) · months_kept(o) · R − cost(o)`` with ``R`` the monthly revenue (USD) and
the priors below (Chargebee/Recurly cancel-flow figures as a starting point; replace them with
fitted rates once intents have outcomes). The best positive-EV offer is shown; holdout customers
(`paycycle.holdout`) and customers offered something in the last ``offer_cap_days`` get none.

**Concurrency and retries.** A visit is decided and recorded in one transaction that first locks
the customer (PostgreSQL: ``SELECT … FOR NO KEY UPDATE`` on the customer's row; SQLite:
``BEGIN IMMEDIATE``, its one write lock), so two simultaneous visits cannot both pass the
frequency cap. A visit sent with an idempotency key stores its answer in ``cancel_intent_keys``;
the same key and body within ``KEY_REPLAY_WINDOW`` get that answer again (nothing new recorded),
the same key with another body is refused (`KeyReuseError`). Answers past the window are
deleted when their key comes back and by `purge_expired_keys`, which the daily billing flow runs.

**Saves.** A visit counts as a save only if the customer's subscription is still live
``save_days`` after it, checked against the store's ``subscriptions.cancelled_at``
(`check_saves`, CLI ``paycycle saves --as-of DATE``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, bindparam, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from paycycle import catalog
from paycycle.config import RetentionParams
from paycycle.errors import DataError
from paycycle.holdout import in_holdout
from paycycle.store import CancelIntent, CancelIntentKey, Customer, Plan, Subscription

REASONS = ("too_expensive", "not_using", "missing_feature", "switching", "other")
# offer -> (cost as a share of one month's revenue, months of revenue kept if accepted)
CANCEL_OFFERS: dict[str, tuple[float, float]] = {
    "discount_20": (0.60, 6.0),  # 20% off for 3 months
    "pause_1m": (0.0, 3.0),
    "pause_2m": (0.0, 2.5),
    "pause_3m": (0.0, 2.0),
    "downgrade": (0.0, 5.0),  # revenue of the lower plan: scaled by the price ratio below
    "annual_switch": (2.0, 12.0),  # two months free on the annual plan
}
ACCEPT: dict[str, dict[str, float]] = {  # P(accept | reason, offer)
    "too_expensive": {"discount_20": 0.30, "downgrade": 0.25, "annual_switch": 0.10},
    "not_using": {"pause_1m": 0.15, "pause_2m": 0.20, "pause_3m": 0.22, "downgrade": 0.12},
    "missing_feature": {"discount_20": 0.08, "pause_2m": 0.10},
    "switching": {"discount_20": 0.15, "annual_switch": 0.05},
    "other": {"discount_20": 0.10, "pause_1m": 0.08},
}
KEY_REPLAY_WINDOW = dt.timedelta(hours=24)  # an Idempotency-Key's answer is replayed this long
PLAN_PRICE = {p[0]: p[3] for p in catalog.PLANS}
PLAN_BY_TIER = {p[2]: p[3] for p in catalog.PLANS}


class KeyReuseError(DataError):
    """An idempotency key sent again, within the replay window, with a different request."""


@dataclass(frozen=True)
class CancelOffer:
    offer: str | None
    months: int | None
    expected_value: float
    reason: str


def match_offer(reason: str, monthly_usd: float, tier: int, cycle: str) -> CancelOffer:
    """The best positive-EV cancel offer for the stated `reason` (module docstring)."""
    if reason not in REASONS:
        raise DataError(f"reason: unknown {reason!r}; choose one of {', '.join(REASONS)}")
    best: tuple[float, str] | None = None
    for offer, p in ACCEPT[reason].items():
        if offer == "downgrade" and tier <= 1:
            continue
        if offer == "annual_switch" and cycle == "annual":
            continue
        cost_share, months = CANCEL_OFFERS[offer]
        revenue = monthly_usd
        if offer == "downgrade":
            revenue = monthly_usd * PLAN_BY_TIER[tier - 1] / PLAN_BY_TIER[tier]
        ev = p * months * revenue - p * cost_share * monthly_usd
        if best is None or ev > best[0]:
            best = (ev, offer)
    if best is None or best[0] <= 0:
        return CancelOffer(None, None, 0.0, f"no offer with positive value for {reason}")
    ev, offer = best
    months = int(offer[-2]) if offer.startswith("pause_") else None
    return CancelOffer(offer, months, round(ev, 2), f"best expected value for {reason}")


def record_intent(
    engine: Engine,
    customer_id: int,
    reason: str,
    as_of: dt.date,
    params: RetentionParams,
    idempotency_key: str | None = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Match an offer to a cancel-page visit and store it in `cancel_intents` (module docstring).

    Args:
        idempotency_key: the client's key for this request; a retry with the same key and body
            within `KEY_REPLAY_WINDOW` of `now` returns the first answer and records nothing.
        now: the request time (default: the current UTC time), for the replay window.

    Raises:
        DataError: unknown customer or no subscription (`customer_id`), or a bad reason.
        KeyReuseError: `idempotency_key` already answered a different request.
    """
    if reason not in REASONS:
        raise DataError(f"reason: unknown {reason!r}; choose one of {', '.join(REASONS)}")
    now = now or dt.datetime.now(dt.UTC)
    digest = hashlib.sha256(
        json.dumps({"customer_id": customer_id, "reason": reason}, sort_keys=True).encode()
    ).hexdigest()
    try:
        return _record_once(
            engine, customer_id, reason, as_of, params, idempotency_key, digest, now
        )
    except IntegrityError:
        if idempotency_key is None:
            raise
        # the same key committed by a concurrent request for another customer: answer as a retry
        return _record_once(
            engine, customer_id, reason, as_of, params, idempotency_key, digest, now
        )


def purge_expired_keys(engine: Engine, now: dt.datetime | None = None) -> int:
    """Delete the stored `Idempotency-Key` answers older than `KEY_REPLAY_WINDOW`.

    Returns:
        How many were deleted. Safe beside live visits: an expired key would be replaced anyway.
    """
    now = now or dt.datetime.now(dt.UTC)
    k = CancelIntentKey
    with engine.begin() as conn:
        gone = conn.execute(delete(k).where(k.created_at <= now - KEY_REPLAY_WINDOW))
    return int(gone.rowcount or 0)


def _lock_customer(conn: Connection, customer_id: int) -> None:
    """Hold the customer until the transaction ends, so their visits are decided one at a time."""
    if conn.dialect.name == "sqlite":  # one lock for the whole file: take it before reading
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:  # NO KEY: foreign-key checks of other writers (FOR KEY SHARE) are not blocked
        conn.execute(
            select(Customer.customer_id)
            .where(Customer.customer_id == customer_id)
            .with_for_update(key_share=True)
        )


def _record_once(
    engine: Engine,
    customer_id: int,
    reason: str,
    as_of: dt.date,
    params: RetentionParams,
    key: str | None,
    digest: str,
    now: dt.datetime,
) -> dict[str, Any]:
    k = CancelIntentKey
    with engine.begin() as conn:
        _lock_customer(conn, customer_id)
        if key is not None:
            conn.execute(
                delete(k).where(k.idempotency_key == key, k.created_at <= now - KEY_REPLAY_WINDOW)
            )
            stored = conn.execute(
                select(k.request_hash, k.response).where(k.idempotency_key == key)
            ).first()
            if stored is not None:
                if stored.request_hash != digest:
                    raise KeyReuseError(
                        "Idempotency-Key: already used for a different request; send a new key"
                    )
                return json.loads(stored.response)
        result = _decide_and_insert(conn, customer_id, reason, as_of, params)
        if key is not None:
            conn.execute(
                insert(k).values(
                    idempotency_key=key,
                    customer_id=customer_id,
                    request_hash=digest,
                    response=json.dumps(result),
                    created_at=now,
                )
            )
    return result


def _decide_and_insert(
    conn: Connection, customer_id: int, reason: str, as_of: dt.date, params: RetentionParams
) -> dict[str, Any]:
    """Within the customer's lock: the offer (holdout, frequency cap, best EV) and its row."""
    sub = (
        conn.execute(
            select(Subscription.cycle, Plan.tier, Plan.monthly_price)
            .join(Customer, Customer.customer_id == Subscription.customer_id)
            .join(Plan, Plan.plan_id == Subscription.plan_id)
            .where(Subscription.customer_id == customer_id)
        )
        .mappings()
        .first()
    )
    if sub is None:
        raise DataError(f"customer_id: no subscription for customer {customer_id}")
    holdout = bool(in_holdout([customer_id], params.holdout_share, params.holdout_salt)[0])
    since = as_of - dt.timedelta(days=params.offer_cap_days)
    recent = conn.execute(
        select(func.count()).where(
            CancelIntent.customer_id == customer_id,
            CancelIntent.offer.is_not(None),
            CancelIntent.created_on > since,
        )
    ).scalar_one()
    if holdout:
        choice = CancelOffer(None, None, 0.0, "customer is in the retention holdout")
    elif recent:
        choice = CancelOffer(
            None, None, 0.0, f"already offered within {params.offer_cap_days} days"
        )
    else:
        choice = match_offer(reason, float(sub["monthly_price"]), int(sub["tier"]), sub["cycle"])
    intent_id = conn.execute(
        CancelIntent.__table__.insert()
        .values(
            customer_id=customer_id,
            reason=reason,
            offer=choice.offer,
            offer_months=choice.months,
            expected_value=choice.expected_value,
            holdout=holdout,
            created_on=as_of,
            outcome="pending",
            created_at=dt.datetime.now(dt.UTC),
        )
        .returning(CancelIntent.intent_id)
    ).scalar_one()
    return {
        "intent_id": int(intent_id),
        "customer_id": customer_id,
        "reason": reason,
        "offer": choice.offer,
        "offer_months": choice.months,
        "expected_value": choice.expected_value,
        "holdout": holdout,
        "explanation": choice.reason,
    }


def check_saves(engine: Engine, as_of: dt.date, save_days: int = 30) -> pd.DataFrame:
    """Settle intents whose `save_days` have passed by `as_of`: saved iff still live then.

    Returns:
        Per reason and offer over all settled intents: settled, saved, save_rate.
    """
    c = CancelIntent
    cutoff = as_of - dt.timedelta(days=save_days)
    with engine.begin() as conn:
        pending = pd.DataFrame(
            conn.execute(
                select(c.intent_id, c.customer_id, c.created_on, Subscription.cancelled_at)
                .outerjoin(Subscription, Subscription.customer_id == c.customer_id)
                .where(c.saved.is_(None), c.created_on <= cutoff)
            ).all(),
            columns=["intent_id", "customer_id", "created_on", "cancelled_at"],
        )
        if not pending.empty:
            horizon = pd.to_datetime(pending["created_on"]) + pd.Timedelta(days=save_days)
            ended = pd.to_datetime(pending["cancelled_at"])
            saved = (ended.isna() | (ended > horizon)).to_numpy()
            conn.execute(
                update(c)
                .where(c.intent_id == bindparam("iid"))
                .values(saved=bindparam("s"), outcome=bindparam("o"), checked_on=as_of),
                [
                    {"iid": int(i), "s": bool(v), "o": "saved" if v else "lost"}
                    for i, v in zip(pending["intent_id"], saved, strict=True)
                ],
            )
        rows = conn.execute(select(c.reason, c.offer, c.saved).where(c.saved.is_not(None))).all()
    df = pd.DataFrame(rows, columns=["reason", "offer", "saved"])
    df["offer"] = df["offer"].fillna("none")
    out = df.groupby(["reason", "offer"], as_index=False).agg(
        settled=("saved", "size"), saved=("saved", "sum")
    )
    out["save_rate"] = out["saved"] / out["settled"]
    return out
