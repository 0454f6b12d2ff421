"""Concurrent and retried `/cancel-intent` visits on the real stores (SQLite and PostgreSQL).

The races are forced, not hoped for: the first visit pauses right after its frequency-cap (or
idempotency-key) read until the second visit has finished or a few seconds passed. Without the
customer lock the second visit slips in and both pass the cap; with it the second waits, so the
outcome is the same however the threads are scheduled.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from paycycle.config import RetentionParams
from paycycle.holdout import in_holdout
from paycycle.loader import load_raw
from paycycle.store import CancelIntent, CancelIntentKey, Subscription, make_engine, upgrade
from retention.saves import KeyReuseError, purge_expired_keys, record_intent

PARAMS = RetentionParams(holdout_share=0.0)  # every customer may get an offer
DAY = dt.date(2026, 6, 1)
NOW = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
PAUSE_S = 3.0  # how long the first visit waits for the second (never asserted on)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path, small_sim: Path) -> Iterator[str]:
    """A migrated store holding the small simulation, on each backend."""
    url = (
        request.getfixturevalue("pg_url")
        if request.param == "postgres"
        else f"sqlite:///{tmp_path / 'store.db'}"
    )
    upgrade(url)
    engine = make_engine(url)
    load_raw(engine, small_sim / "raw")
    engine.dispose()
    yield url


def _customers(url: str, n: int) -> list[int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        ids = conn.execute(
            select(Subscription.customer_id).order_by(Subscription.customer_id).limit(200)
        ).scalars()
        ids = sorted(set(ids))
    engine.dispose()
    assert not in_holdout(ids[:n], PARAMS.holdout_share, PARAMS.holdout_salt).any()
    return ids[:n]


def _paused_engine(url: str, marker: str, paused: threading.Event, go_on: threading.Event) -> Any:
    """An engine that, after running a statement containing `marker`, signals `paused` and
    waits (bounded) for `go_on` before continuing its transaction."""
    engine = make_engine(url)

    @event.listens_for(engine, "after_cursor_execute")
    def _pause(conn, cursor, statement, params, context, executemany) -> None:  # noqa: ANN001
        if marker in statement and not paused.is_set():
            paused.set()
            go_on.wait(PAUSE_S)

    return engine


def _race(url: str, marker: str, first: dict, second: dict) -> tuple[Any, Any]:
    """Run `first` (paused after `marker`) and `second` (started during the pause) at once."""
    paused, done = threading.Event(), threading.Event()
    slow, fast = _paused_engine(url, marker, paused, done), make_engine(url)
    results: dict[str, Any] = {}

    def run(name: str, engine: Any, kwargs: dict) -> None:
        try:
            results[name] = record_intent(engine, **kwargs)
        except Exception as exc:  # kept to assert on
            results[name] = exc
        finally:
            if name == "second":
                done.set()

    a = threading.Thread(target=run, args=("first", slow, first))
    a.start()
    assert paused.wait(60), "the first visit never reached the paused statement"
    b = threading.Thread(target=run, args=("second", fast, second))
    b.start()
    a.join(60)
    b.join(60)
    slow.dispose()
    fast.dispose()
    return results["first"], results["second"]


def _visit(customer: int, reason: str = "too_expensive", key: str | None = None) -> dict:
    return {
        "customer_id": customer,
        "reason": reason,
        "as_of": DAY,
        "params": PARAMS,
        "idempotency_key": key,
        "now": NOW,
    }


def _intents(url: str, customer: int) -> list[tuple[int, str | None]]:
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(
            select(CancelIntent.intent_id, CancelIntent.offer).where(
                CancelIntent.customer_id == customer
            )
        ).all()
    engine.dispose()
    return [tuple(r) for r in rows]


def test_two_concurrent_visits_cannot_both_pass_the_frequency_cap(store_url: str) -> None:
    (customer,) = _customers(store_url, 1)
    first, second = _race(store_url, "count(", _visit(customer), _visit(customer, "not_using"))
    assert isinstance(first, dict) and isinstance(second, dict), (first, second)
    offered = [r for r in (first, second) if r["offer"] is not None]
    assert len(offered) == 1, (first, second)
    capped = second if offered[0] is first else first
    assert "already offered" in capped["explanation"]
    rows = _intents(store_url, customer)
    assert len(rows) == 2 and sum(offer is not None for _, offer in rows) == 1


def test_same_key_sent_twice_at_once_records_one_visit(store_url: str) -> None:
    (customer,) = _customers(store_url, 1)
    visit = _visit(customer, key="retry-7f3a")
    first, second = _race(store_url, "count(", visit, visit)
    assert isinstance(first, dict) and first == second  # the retry got the first answer
    assert len(_intents(store_url, customer)) == 1


def test_same_key_for_two_customers_at_once_is_refused_for_one(store_url: str) -> None:
    """The key's row is written by both (different customers do not share a lock): the unique
    key lets one commit and the other is refused, recording nothing."""
    a, b = _customers(store_url, 2)
    first, second = _race(
        store_url,
        "cancel_intent_keys.request_hash",
        _visit(a, key="shared-key"),
        _visit(b, key="shared-key"),
    )
    results = [first, second]
    assert sum(isinstance(r, dict) for r in results) == 1, results
    assert sum(isinstance(r, KeyReuseError) for r in results) == 1, results
    assert len(_intents(store_url, a)) + len(_intents(store_url, b)) == 1


def test_key_replays_for_24_hours_then_records_a_new_visit(store_url: str) -> None:
    customer, other = _customers(store_url, 2)
    engine = make_engine(store_url)
    first = record_intent(engine, **_visit(customer, key="k-1"))
    again = record_intent(
        engine, **{**_visit(customer, key="k-1"), "now": NOW + dt.timedelta(hours=23)}
    )
    assert again == first and len(_intents(store_url, customer)) == 1
    with pytest.raises(KeyReuseError, match="Idempotency-Key"):
        record_intent(engine, **_visit(customer, "other", key="k-1"))
    with pytest.raises(KeyReuseError, match="Idempotency-Key"):
        record_intent(engine, **_visit(other, key="k-1"))
    later = record_intent(
        engine, **{**_visit(customer, key="k-1"), "now": NOW + dt.timedelta(hours=25)}
    )
    assert later["intent_id"] != first["intent_id"]
    assert "already offered" in later["explanation"]  # a new visit, under the frequency cap
    with engine.connect() as conn:
        keys = conn.execute(select(func.count()).select_from(CancelIntentKey)).scalar_one()
    engine.dispose()
    assert keys == 1 and len(_intents(store_url, customer)) == 2


def test_expired_keys_are_purged_without_touching_live_ones(store_url: str) -> None:
    """Keys never sent again must not pile up: the daily purge deletes those past the window."""
    old, fresh = _customers(store_url, 2)
    engine = make_engine(store_url)
    record_intent(engine, **_visit(old, key="old-key"))
    record_intent(engine, **{**_visit(fresh, key="fresh-key"), "now": NOW + dt.timedelta(hours=20)})
    assert purge_expired_keys(engine, now=NOW + dt.timedelta(hours=25)) == 1
    with engine.connect() as conn:
        left = conn.execute(select(CancelIntentKey.idempotency_key)).scalars().all()
    engine.dispose()
    assert left == ["fresh-key"] and len(_intents(store_url, old)) == 1  # the visit stays
