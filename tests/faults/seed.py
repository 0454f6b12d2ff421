"""Outbox rows for fault and security tests: customers plus due notices, no simulator needed."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy import Engine, text

from notify.outbox import EnqueueResult, enqueue

DAY = dt.date(2025, 3, 10)


def seed_customers(engine: Engine, emails: dict[int, str]) -> None:
    """One customer per id with the given email (any text: the tests put hostile ones in)."""
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO customers VALUES (:i, :d, 'US', 'USD', 'en', :e, 'organic', 'smb')"),
            [{"i": i, "d": dt.date(2024, 1, 1), "e": e} for i, e in emails.items()],
        )


def charge_notice(customer_id: int, email: str, day: dt.date = DAY) -> dict[str, Any]:
    charge = day + dt.timedelta(days=3)
    return {
        "customer_id": customer_id,
        "subscription_id": None,
        "kind": "upcoming_charge",
        "cycle_date": charge,
        "dedup_key": f"{customer_id}:upcoming_charge:{charge}",
        "locale": "en",
        "payload": {
            "email": email,
            "currency": "USD",
            "amount": 49.0,
            "plan": "pro",
            "charge_date": charge.isoformat(),
        },
        "error": None,
    }


def seed_charges(engine: Engine, emails: dict[int, str], channel: str) -> EnqueueResult:
    """Customers plus one `upcoming_charge` notice each, enqueued for `channel`."""
    seed_customers(engine, emails)
    rows = [charge_notice(i, e) for i, e in emails.items()]
    return enqueue(engine, pd.DataFrame(rows), channel)
