"""`POST /cancel-intent` (validation, Idempotency-Key, concurrent visits) and `GET /payment-method`
(signed links, hostile tokens) on the real service."""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing

import httpx
import pytest

from notify.links import UPDATE_PAYMENT, sign


def test_cancel_intent_needs_token(api) -> None:
    r = httpx.post(
        f"{api.url}/cancel-intent", json={"customer_id": 1, "reason": "too_expensive"}, timeout=30
    )
    assert r.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"customer_id": 1, "reason": "bored"},
        {"customer_id": 1},
        {"customer_id": 0, "reason": "other"},
        {"customer_id": "x", "reason": "other"},
    ],
)
def test_cancel_intent_rejects_bad_input_with_422(api, body) -> None:
    r = api.post("/cancel-intent", body)
    assert r.status_code == 422, r.text


def test_payment_method_link_without_valid_token_is_refused(api) -> None:
    r = httpx.get(f"{api.url}/payment-method", params={"token": "abc.def"}, timeout=30)
    assert r.status_code == 403 and "link refused" in r.json()["error"]


@pytest.mark.parametrize("raw", ["abc.%C3%A9", "%C3%A9.%C3%A9", "abc.%FF", "a.b%00"])
def test_payment_method_non_ascii_token_is_403_not_500(api, raw: str) -> None:
    """The reported attack, on the real service: no auth, a non-ASCII token."""
    r = httpx.get(f"{api.url}/payment-method?token={raw}", timeout=30)
    assert r.status_code == 403, r.text
    assert r.headers["content-type"] == "application/json" and r.json()["error"]


def test_payment_method_genuine_link_answers_200(api) -> None:
    token = sign(
        5, UPDATE_PAYMENT, dt.datetime.now(dt.UTC) + dt.timedelta(hours=1), api.link_secret
    )
    r = httpx.get(f"{api.url}/payment-method", params={"token": token}, timeout=30)
    assert r.status_code == 200 and r.json()["customer_id"] == 5


def _fresh_customers(api, n: int) -> list[int]:
    """Customers with a subscription, outside the holdout, never seen on the cancel page."""
    from paycycle.holdout import in_holdout

    r = api.settings().params.retention
    with closing(sqlite3.connect(api.workdir / "store.db")) as db:
        seen = {c for (c,) in db.execute("SELECT customer_id FROM cancel_intents")}
        ids = [c for (c,) in db.execute("SELECT customer_id FROM subscriptions ORDER BY 1 DESC")]
    ids = [c for c in dict.fromkeys(ids) if c not in seen]
    keep = ~in_holdout(ids, r.holdout_share, r.holdout_salt)
    return [c for c, k in zip(ids, keep, strict=True) if k][:n]


def _visits(api, customer: int) -> int:
    with closing(sqlite3.connect(api.workdir / "store.db")) as db:
        query = "SELECT count(*) FROM cancel_intents WHERE customer_id = ?"
        return db.execute(query, (customer,)).fetchone()[0]


def test_idempotency_key_replays_the_first_answer(api) -> None:
    customer, other = _fresh_customers(api, 2)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"customer_id": customer, "reason": "too_expensive"}
    first = api.post("/cancel-intent", body, headers=key)
    assert first.status_code == 200, first.text
    assert first.json()["offer"] is not None
    again = api.post("/cancel-intent", body, headers=key)
    assert again.status_code == 200 and again.json() == first.json()
    assert _visits(api, customer) == 1  # the retry recorded nothing
    for changed in ({**body, "reason": "other"}, {**body, "customer_id": other}):
        r = api.post("/cancel-intent", changed, headers=key)
        assert r.status_code == 409, r.text
        assert r.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert _visits(api, customer) == 1 and _visits(api, other) == 0
    plain = api.post("/cancel-intent", body)  # without a key: a new visit, under the cap
    assert plain.status_code == 200 and plain.json()["intent_id"] != first.json()["intent_id"]
    assert plain.json()["offer"] is None and _visits(api, customer) == 2


@pytest.mark.parametrize("bad", [b"", b"has space", b"x" * 256, "café".encode()])
def test_malformed_idempotency_key_is_422(api, bad: bytes) -> None:
    (customer,) = _fresh_customers(api, 1)
    r = httpx.post(
        f"{api.url}/cancel-intent",
        json={"customer_id": customer, "reason": "other"},
        headers={"Authorization": f"Bearer {api.token}".encode(), "Idempotency-Key": bad},
        timeout=30,
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    assert _visits(api, customer) == 0


def test_concurrent_visits_of_one_customer_get_one_offer(api) -> None:
    (customer,) = _fresh_customers(api, 1)
    bodies = [{"customer_id": customer, "reason": r} for r in ("too_expensive", "not_using") * 4]
    with ThreadPoolExecutor(len(bodies)) as pool:
        answers = list(pool.map(lambda b: api.post("/cancel-intent", b), bodies))
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    assert sum(a.json()["offer"] is not None for a in answers) == 1
    assert _visits(api, customer) == len(bodies)


def test_openapi_documents_the_idempotency_key(api) -> None:
    spec = httpx.get(f"{api.url}/docs.json", headers=api.auth, timeout=30).json()
    op = spec["paths"]["/cancel-intent"]["post"]
    (param,) = [p for p in op["parameters"] if p["name"] == "Idempotency-Key"]
    assert param["in"] == "header" and not param["required"]
    assert (
        param["schema"]["maxLength"] == 255
        and "Idempotency-Key" in op["responses"]["409"]["description"]
    )


def test_unknown_customer_is_404_json(api) -> None:
    r = api.post("/cancel-intent", {"customer_id": 10**9, "reason": "other"})
    assert r.status_code == 404, r.text
    assert r.json()["detail"][0]["loc"] == ["customer_id"]
