"""`POST /cancel-intent` and `GET /payment-method` on the real service."""

from __future__ import annotations

import httpx
import pytest


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
    assert r.status_code in (403, 503)  # 503 when the service has no link secret
