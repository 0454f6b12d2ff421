"""The billing cycle monitor: which notices fall due on a day, computed set-based from the store.

One query per notice family runs over whole tables (no loop per subscription); everything that
depends on the day (the charge date `as_of + N`, the renewal anniversaries, the month start) is a
bound parameter, so the same SQLAlchemy Core statements run on SQLite and PostgreSQL.

Rules for day ``D`` (all point-in-time: a subscription counts if it started on or before ``D`` and
was not cancelled by ``D``):

* ``upcoming_charge``: monthly subscriptions whose ``billing_day`` is the day of ``C = D + N``
  (``N = notify.upcoming_days``), started before ``C``; skipped when an accepted ``free_month``
  offer covers ``C``'s month. Cycle date ``C``.
* ``renewal_<L>d`` for each lead ``L`` in ``notify.renewal_days``: annual subscriptions whose
  anniversary (``start_date + 12·k`` months, ``k ≥ 1``) is ``R = D + L``. Cycle date ``R``.
* ``payment_failed``: a payment attempt dated ``D`` failed and a retry is still scheduled
  (attempt ``k < len(retry_days)``; the next retry is ``due_date + retry_days[k]``).
  ``subscription_at_risk``: the last retry failed. Cycle date ``D`` (the attempt date), so every
  retry gets its own notice.
* ``plan_recommendation``: the recommender's top item for customers scored on ``D``; cycle date is
  the month start, so the outbox's unique key allows at most one per customer per month.
* ``retention_offer``: the offer policy's decisions dated ``D``; cycle date is the month start.

With ``retention`` params (`paycycle.config.RetentionParams`; the daily run passes them):

* ``card_expiring``: the customer's current card (latest ``added_on ≤ D``) has its last valid
  day ``X = D + card_expiring_days`` and a live subscription; cycle date ``X``. Cards expire at a
  month end and charges fall after it, so this precedes any charge that would fail on it.
* ``trial_ending``: trials whose ``trial_end = D + trial_ending_days``; cycle date the trial end.
* ``scheduled_cancellation``: live subscriptions with ``cancelled_at = D + cancellation_days``;
  cycle date the end date. No self-serve link: no route extends a subscription, so the notice
  tells the customer to keep it from their account.
* customers in the holdout (`paycycle.holdout`) get no ``plan_recommendation`` or
  ``retention_offer``.

With ``links=True`` (the daily run sets it when ``PAYCYCLE_LINK_SECRET`` is set) every dunning
notice (``payment_failed``, ``subscription_at_risk``, ``card_expiring``) asks for a signed
``update_payment_url``; hard declines are flagged (``hard_decline``) and ask for a new card. The
payload only names the links (``payload["links"] = {field: purpose}``): the outbox signs them
when it sends the notice
(`notify.outbox.deliver`), so a link's expiry counts from the send, not from the notice day.

Amounts come from the store: plan price (annual price for annual plans) plus the subscription's
add-ons, converted at `paycycle.catalog.FX` into the customer's currency; failed payments use the
payment's own amount. A notice whose facts are missing (no plan price, no FX rate) is still
returned with ``error`` set, so the outbox records it as dead with that reason.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import Connection, Engine, and_, case, func, literal, or_, select

from notify.links import LINKS_FIELD, UPDATE_PAYMENT
from paycycle import catalog
from paycycle.config import NotifyParams, RetentionParams
from paycycle.holdout import in_holdout
from paycycle.store import (
    Addon,
    Card,
    Customer,
    Invoice,
    Offer,
    Payment,
    Plan,
    Score,
    Subscription,
    Trial,
)

UPCOMING = "upcoming_charge"
PAYMENT_FAILED = "payment_failed"
AT_RISK = "subscription_at_risk"
RECOMMENDATION = "plan_recommendation"
RETENTION = "retention_offer"
CARD_EXPIRING = "card_expiring"
TRIAL_ENDING = "trial_ending"
SCHEDULED_CANCELLATION = "scheduled_cancellation"
RETENTION_KINDS = (CARD_EXPIRING, TRIAL_ENDING, SCHEDULED_CANCELLATION)
NOTICE_COLUMNS = [
    "customer_id",
    "subscription_id",
    "kind",
    "cycle_date",
    "dedup_key",
    "locale",
    "payload",
    "error",
]
MAX_YEARS = 100  # anniversaries searched back from the renewal date


def renewal_kind(lead_days: int) -> str:
    """The notice kind for an annual renewal `lead_days` ahead."""
    return f"renewal_{lead_days}d"


def notice_kinds(params: NotifyParams) -> list[str]:
    """Every kind `due_notices` can emit, in report order."""
    renewals = [renewal_kind(d) for d in params.renewal_days]
    return [
        UPCOMING,
        *renewals,
        PAYMENT_FAILED,
        AT_RISK,
        RECOMMENDATION,
        RETENTION,
        *RETENTION_KINDS,
    ]


def dedup_key(customer_id: int, kind: str, cycle_date: dt.date) -> str:
    """The outbox's unique key: one notice per customer, kind and cycle date."""
    return f"{int(customer_id)}:{kind}:{cycle_date.isoformat()}"


def add_months(day: dt.date, months: int) -> dt.date:
    """`day` moved by whole months (billing days are 1–28, so the day always exists)."""
    m = day.month - 1 + months
    y, m = day.year + m // 12, m % 12 + 1
    last = (dt.date(y + m // 12, m % 12 + 1, 1) - dt.timedelta(days=1)).day
    return dt.date(y, m, min(day.day, last))


def _fx_rate() -> Any:
    return case(catalog.FX, value=Customer.currency, else_=None)


def _addon_total() -> Any:
    """Correlated sum of the subscription's add-on prices (`addons` is a comma-separated list)."""
    pattern = literal("%,") + Addon.name + literal(",%")
    return (
        select(func.coalesce(func.sum(Addon.monthly_price), 0.0))
        .where((literal(",") + Subscription.addons + literal(",")).like(pattern))
        .scalar_subquery()
    )


def _live(as_of: dt.date) -> Any:
    return and_(
        Subscription.start_date <= as_of,
        or_(Subscription.cancelled_at.is_(None), Subscription.cancelled_at > as_of),
    )


def _charge_query(kind: str, cycle_date: dt.date, where: Any) -> tuple[Any, dt.date]:
    return (
        select(
            Subscription.customer_id,
            Subscription.subscription_id,
            literal(kind).label("kind"),
            Subscription.cycle,
            Subscription.plan_id,
            Customer.locale,
            Customer.email,
            Customer.currency,
            Plan.name.label("plan"),
            Plan.monthly_price,
            Plan.annual_price,
            _addon_total().label("addons_usd"),
            _fx_rate().label("fx"),
        )
        .select_from(Subscription)
        .join(Customer, Customer.customer_id == Subscription.customer_id)
        .outerjoin(Plan, Plan.plan_id == Subscription.plan_id)
        .where(where)
    ), cycle_date


def _upcoming(as_of: dt.date, params: NotifyParams) -> Any:
    charge = as_of + dt.timedelta(days=params.upcoming_days)
    month0 = charge.replace(day=1)
    free_month = (
        select(Offer.offer_id)
        .where(
            Offer.customer_id == Subscription.customer_id,
            Offer.offer_type == "free_month",
            Offer.accepted.is_(True),
            Offer.offered_at >= month0,
            Offer.offered_at <= charge,
        )
        .exists()
    )
    where = and_(
        Subscription.cycle == "monthly",
        Subscription.billing_day == charge.day,
        Subscription.start_date < charge,
        _live(as_of),
        ~free_month,
    )
    return _charge_query(UPCOMING, charge, where)


def _renewal(as_of: dt.date, lead: int) -> Any:
    renew = as_of + dt.timedelta(days=lead)
    anniversaries = [add_months(renew, -12 * k) for k in range(1, MAX_YEARS + 1)]
    where = and_(
        Subscription.cycle == "annual",
        Subscription.start_date.in_(anniversaries),
        Subscription.billing_day == renew.day,
        _live(as_of),
    )
    return _charge_query(renewal_kind(lead), renew, where)


def _failed_payments(as_of: dt.date) -> Any:
    return (
        select(
            Payment.customer_id,
            Invoice.subscription_id,
            Payment.invoice_id,
            Payment.attempt,
            Payment.amount,
            Payment.decline_code,
            Invoice.due_date,
            Invoice.currency,
            Customer.locale,
            Customer.email,
        )
        .select_from(Payment)
        .join(Invoice, Invoice.invoice_id == Payment.invoice_id)
        .join(Customer, Customer.customer_id == Payment.customer_id)
        .where(Payment.attempted_at == as_of, Payment.status == "failed")
    )


def _finite(x: Any) -> bool:
    return x is not None and isinstance(x, int | float) and math.isfinite(x) and x > 0


def _charge_rows(df: pd.DataFrame, date_field: str) -> list[dict[str, Any]]:
    annual = df["cycle"].eq("annual").to_numpy()
    months = np.where(annual, catalog.ANNUAL_MONTHS_CHARGED, 1)
    base = np.where(annual, df["annual_price"], df["monthly_price"]).astype(float)
    usd = base + df["addons_usd"].astype(float).to_numpy() * months
    amount = np.round(usd * df["fx"].astype(float).to_numpy(), 2)
    rows = []
    for rec, amt in zip(df.to_dict("records"), amount, strict=True):
        error = None
        if not _finite(rec["monthly_price"] if rec["cycle"] == "monthly" else rec["annual_price"]):
            error = (
                f"subscription {rec['subscription_id']}: plan {rec['plan_id']} has no valid price"
            )
        elif rec["fx"] is None or not math.isfinite(float(rec["fx"])):
            error = f"customer {rec['customer_id']}: no FX rate for currency {rec['currency']!r}"
        payload = {
            "email": rec["email"],
            "currency": rec["currency"],
            "plan": rec["plan"],
            "amount": None if error else float(amt),
            date_field: rec["cycle_date"].isoformat(),
        }
        rows.append(_row(rec, rec["kind"], rec["cycle_date"], payload, error))
    return rows


def _row(
    rec: dict[str, Any], kind: str, cycle: dt.date, payload: dict[str, Any], error: str | None
) -> dict[str, Any]:
    sub = rec.get("subscription_id")
    return {
        "customer_id": int(rec["customer_id"]),
        "subscription_id": None if sub is None or pd.isna(sub) else int(sub),
        "kind": kind,
        "cycle_date": cycle,
        "dedup_key": dedup_key(rec["customer_id"], kind, cycle),
        "locale": rec["locale"],
        "payload": payload,
        "error": error,
    }


def _payment_rows(
    df: pd.DataFrame,
    as_of: dt.date,
    retry_days: tuple[int, ...],
    links: bool = False,
) -> list[dict]:
    rows = []
    for rec in df.to_dict("records"):
        attempt = int(rec["attempt"])
        due = rec["due_date"]
        payload = {
            "email": rec["email"],
            "currency": rec["currency"],
            "amount": float(rec["amount"]),
            "due_date": due.isoformat(),
            "invoice_id": int(rec["invoice_id"]),
            "attempt": attempt,
            "decline_code": rec["decline_code"],
        }
        if links:
            payload["hard_decline"] = bool(catalog.is_hard(rec["decline_code"] or ""))
            payload[LINKS_FIELD] = {"update_payment_url": UPDATE_PAYMENT}
        if attempt < len(retry_days):
            kind = PAYMENT_FAILED
            payload["next_retry_date"] = (due + dt.timedelta(days=retry_days[attempt])).isoformat()
        else:
            kind = AT_RISK
        error = None if _finite(payload["amount"]) else f"payment of invoice {rec['invoice_id']}"
        error = error and error + " has no valid amount"
        rows.append(_row(rec, kind, as_of, payload, error))
    return rows


def _customer_info(conn: Connection, ids: list[int]) -> pd.DataFrame:
    cols = [Customer.customer_id, Customer.locale, Customer.email, Customer.currency]
    frames = []
    for i in range(0, len(ids), 10_000):
        stmt = select(*cols).where(Customer.customer_id.in_(ids[i : i + 10_000]))
        frames.append(
            pd.DataFrame(conn.execute(stmt).mappings().all(), columns=[c.key for c in cols])
        )
    return pd.concat(frames) if frames else pd.DataFrame(columns=[c.key for c in cols])


def _day_rows(frame: pd.DataFrame, as_of: dt.date, name: str, required: list[str]) -> pd.DataFrame:
    from paycycle.errors import DataError

    missing = [c for c in ["customer_id", "as_of", *required] if c not in frame.columns]
    if missing:
        raise DataError(f"{name}: missing column(s) {', '.join(missing)}")
    day = pd.to_datetime(frame["as_of"]).dt.date
    return frame.loc[day == as_of]


def _scores_recommendations(conn: Connection, as_of: dt.date) -> pd.DataFrame:
    """The recommender's batch scores for `as_of`, one row per customer's top item."""
    stmt = select(Score.customer_id, Score.recommendations, Score.recommender_model_version).where(
        Score.as_of == as_of, Score.recommendations.is_not(None)
    )
    out = []
    for cid, recs, version in conn.execute(stmt):
        if not recs:
            continue
        top = recs[0]
        item, score = (top.get("item"), top.get("score")) if isinstance(top, dict) else (top, None)
        out.append(
            {
                "customer_id": cid,
                "as_of": as_of,
                "item": item,
                "score": score,
                "model_version": version,
            }
        )
    return pd.DataFrame(out, columns=["customer_id", "as_of", "item", "score", "model_version"])


def _recommendation_rows(conn: Connection, recs: pd.DataFrame, as_of: dt.date) -> list[dict]:
    day = _day_rows(recs, as_of, "recommendations", ["item"])
    if day.empty:
        return []
    if "score" in day.columns:
        day = day.sort_values(["customer_id", "score"], ascending=[True, False], kind="stable")
    day = day.drop_duplicates("customer_id")
    info = _customer_info(conn, [int(x) for x in day["customer_id"]])
    merged = day.merge(info, on="customer_id", how="inner")
    month0 = as_of.replace(day=1)
    rows = []
    for rec in merged.to_dict("records"):
        payload = {
            "email": rec["email"],
            "currency": rec["currency"],
            "item": rec["item"],
            "score": None if pd.isna(rec.get("score")) else float(rec["score"]),
            "model_version": rec.get("model_version"),
            "month": month0.isoformat(),
        }
        rows.append(_row(rec, RECOMMENDATION, month0, payload, None))
    return rows


def _offer_rows(conn: Connection, offers: pd.DataFrame, as_of: dt.date) -> list[dict]:
    day = _day_rows(offers, as_of, "offers", ["offer_type"])
    if day.empty:
        return []
    if "expected_value" in day.columns:
        day = day.sort_values(["customer_id", "expected_value"], ascending=[True, False])
    day = day.drop_duplicates("customer_id")
    info = _customer_info(conn, [int(x) for x in day["customer_id"]])
    merged = day.merge(info, on="customer_id", how="inner")
    month0 = as_of.replace(day=1)
    rows = []
    for rec in merged.to_dict("records"):
        expires = rec.get("expires_at")
        error = None
        if expires is None or (not isinstance(expires, str) and pd.isna(expires)):
            expires = dt.datetime.combine(add_months(month0, 1), dt.time(), dt.UTC).isoformat()
        else:
            stamp = pd.Timestamp(expires)
            if stamp.tzinfo is None:
                error = (
                    f"retention offer for customer {rec['customer_id']}: expires_at "
                    f"{stamp.isoformat()} has no timezone"
                )
            expires = stamp.isoformat()
        payload = {
            "email": rec["email"],
            "currency": rec["currency"],
            "offer_type": rec["offer_type"],
            "expires_at": expires,
            "month": month0.isoformat(),
        }
        rows.append(_row(rec, RETENTION, month0, payload, error))
    return rows


def _current_card(as_of: dt.date) -> Any:
    """No later card of the same customer was added by the notice day."""
    from sqlalchemy.orm import aliased

    newer = aliased(Card)
    return ~(
        select(newer.card_id)
        .where(
            newer.customer_id == Card.customer_id,
            newer.added_on > Card.added_on,
            newer.added_on <= as_of,
        )
        .correlate(Card)
        .exists()
    )


def _card_expiring(conn: Connection, as_of: dt.date, r: RetentionParams, links: bool) -> list[dict]:
    expires = as_of + dt.timedelta(days=r.card_expiring_days)
    live_sub = (
        select(Subscription.subscription_id)
        .where(Subscription.customer_id == Card.customer_id, _live(as_of))
        .exists()
    )
    stmt = (
        select(Card.customer_id, Card.card_id, Customer.locale, Customer.email, Customer.currency)
        .join(Customer, Customer.customer_id == Card.customer_id)
        .where(Card.expires_on == expires, Card.added_on <= as_of, _current_card(as_of), live_sub)
    )
    rows = []
    for rec in conn.execute(stmt).mappings():
        payload = {
            "email": rec["email"],
            "currency": rec["currency"],
            "card_id": int(rec["card_id"]),
            "expires_on": expires.isoformat(),
        }
        if links:
            payload[LINKS_FIELD] = {"update_payment_url": UPDATE_PAYMENT}
        rows.append(_row(dict(rec), CARD_EXPIRING, expires, payload, None))
    return rows


def _trial_ending(conn: Connection, as_of: dt.date, r: RetentionParams) -> list[dict]:
    ends = as_of + dt.timedelta(days=r.trial_ending_days)
    stmt = (
        select(
            Trial.customer_id,
            Trial.subscription_id,
            Customer.locale,
            Customer.email,
            Customer.currency,
            Plan.name.label("plan"),
        )
        .join(Customer, Customer.customer_id == Trial.customer_id)
        .join(Subscription, Subscription.subscription_id == Trial.subscription_id)
        .outerjoin(Plan, Plan.plan_id == Subscription.plan_id)
        .where(Trial.trial_end == ends, Trial.trial_start <= as_of)
    )
    return [
        _row(
            dict(rec),
            TRIAL_ENDING,
            ends,
            {
                "email": rec["email"],
                "currency": rec["currency"],
                "plan": rec["plan"],
                "trial_end": ends.isoformat(),
            },
            None,
        )
        for rec in conn.execute(stmt).mappings()
    ]


def _scheduled_cancellation(conn: Connection, as_of: dt.date, r: RetentionParams) -> list[dict]:
    ends = as_of + dt.timedelta(days=r.cancellation_days)
    stmt = (
        select(
            Subscription.customer_id,
            Subscription.subscription_id,
            Customer.locale,
            Customer.email,
            Customer.currency,
            Plan.name.label("plan"),
        )
        .join(Customer, Customer.customer_id == Subscription.customer_id)
        .outerjoin(Plan, Plan.plan_id == Subscription.plan_id)
        .where(Subscription.cancelled_at == ends, Subscription.start_date <= as_of)
    )
    rows = []
    for rec in conn.execute(stmt).mappings():
        payload = {
            "email": rec["email"],
            "currency": rec["currency"],
            "plan": rec["plan"],
            "ends_on": ends.isoformat(),
        }
        rows.append(_row(dict(rec), SCHEDULED_CANCELLATION, ends, payload, None))
    return rows


def _drop_holdout(frame: pd.DataFrame | None, r: RetentionParams | None) -> pd.DataFrame | None:
    if frame is None or r is None or frame.empty or "customer_id" not in frame.columns:
        return frame
    return frame.loc[~in_holdout(frame["customer_id"].to_numpy(), r.holdout_share, r.holdout_salt)]


def due_notices(
    bind: Engine | Connection,
    as_of: dt.date,
    params: NotifyParams,
    *,
    recommendations: pd.DataFrame | None = None,
    offers: pd.DataFrame | None = None,
    retention: RetentionParams | None = None,
    links: bool = False,
) -> pd.DataFrame:
    """The notices that fall due on `as_of` (see the module docstring for the rules).

    Args:
        bind: engine or connection to the store.
        as_of: the day being processed.
        params: the `notify` params section.
        recommendations: the recommender's output (`customer_id`, `as_of`, `item`[, `score`,
            `model_version`]); None reads the store's `scores` table for `as_of`.
        offers: the offer policy's decisions (`customer_id`, `as_of`, `offer_type`
            [, `expected_value`, `expires_at` timezone-aware]); None means no retention offers.
        retention: enables `card_expiring`, `trial_ending`, `scheduled_cancellation` and the
            holdout filter; None keeps the original notice set.
        links: dunning and cancellation notices ask for self-serve links (signed at send).

    Returns:
        One row per notice with `NOTICE_COLUMNS`; `error` is set when the store lacks a fact.

    Raises:
        DataError: an input frame lacks a required column.
    """
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            return due_notices(
                conn,
                as_of,
                params,
                recommendations=recommendations,
                offers=offers,
                retention=retention,
                links=links,
            )
    conn = bind
    rows: list[dict[str, Any]] = []
    charge_queries = [(_upcoming(as_of, params), "charge_date")]
    charge_queries += [(_renewal(as_of, lead), "renewal_date") for lead in params.renewal_days]
    for (stmt, cycle_date), date_field in charge_queries:
        df = pd.DataFrame(conn.execute(stmt).mappings().all())
        if not df.empty:
            df["cycle_date"] = cycle_date
            rows += _charge_rows(df, date_field)
    pays = pd.DataFrame(conn.execute(_failed_payments(as_of)).mappings().all())
    if not pays.empty:
        rows += _payment_rows(pays, as_of, tuple(params.retry_days), links)
    if recommendations is None:
        recommendations = _scores_recommendations(conn, as_of)
    rows += _recommendation_rows(conn, _drop_holdout(recommendations, retention), as_of)
    if offers is not None:
        rows += _offer_rows(conn, _drop_holdout(offers, retention), as_of)
    if retention is not None:
        rows += _card_expiring(conn, as_of, retention, links)
        rows += _trial_ending(conn, as_of, retention)
        rows += _scheduled_cancellation(conn, as_of, retention)
    out = pd.DataFrame(rows, columns=NOTICE_COLUMNS)
    return out.sort_values(["kind", "customer_id"], kind="stable").reset_index(drop=True)
