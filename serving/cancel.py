"""`POST /cancel-intent`: the cancel page's reason survey ⇒ the offer matched to the reason.

The request names the customer and the stated reason; `retention.saves.record_intent` picks the
best positive-value offer (discount, pause 1–3 months, downgrade, monthly→annual switch; none for
holdout customers or within the frequency cap) and records the visit in the store's
`cancel_intents`, where `paycycle saves` later settles whether the customer was saved.

An optional `Idempotency-Key` header (1–255 visible ASCII characters, e.g. a UUID) makes retries
safe: the same key and body within 24 hours get the first answer again, the same key with another
body a 409 naming the header (a malformed key is a 422). Two simultaneous visits of one customer
are decided one after the other, so the frequency cap holds (`retention.saves`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from starlette.responses import Response

CancelReason = Literal["too_expensive", "not_using", "missing_feature", "switching", "other"]
CustomerId = Annotated[int, Field(ge=1, description="The customer on the cancel page.")]
_ENGINES: dict[str, Any] = {}
IDEMPOTENCY_HEADER = "Idempotency-Key"
KEY_MAX_CHARS = 255
KEY_PATTERN = r"^[!-~]{1,255}$"  # visible ASCII, no spaces (documented in serving.openapi)


# BentoML flattens `X | None` to `X` in a top-level response schema; OpenAPI 3.0's `nullable`
# keeps the documented contract true for clients and for the schemathesis fuzzer.
Nullable = Field(json_schema_extra={"nullable": True})


class CancelIntentResult(BaseModel):
    intent_id: int
    customer_id: int
    reason: CancelReason
    offer: str | None = Nullable
    offer_months: int | None = Nullable
    expected_value: float
    holdout: bool
    explanation: str


def _engine(url: str) -> Any:
    from paycycle.store import make_engine

    if url not in _ENGINES:
        _ENGINES[url] = make_engine(url)
    return _ENGINES[url]


def _reply(payload: object, status: int = 200) -> Response:
    return Response(json.dumps(payload).encode(), status, media_type="application/json")


def _bad_key(message: str, status: int = 422) -> Response:
    detail = [{"loc": ["header", IDEMPOTENCY_HEADER], "msg": message}]
    return _reply({"error": f"{IDEMPOTENCY_HEADER}: {message}", "detail": detail}, status)


def _valid_key(key: str) -> bool:
    return 0 < len(key) <= KEY_MAX_CHARS and all("!" <= c <= "~" for c in key)


async def cancel_intent(
    settings: Any, customer_id: int, reason: str, key: str | None = None
) -> Response:
    """Record the visit and return the matched offer (404 for an unknown customer).

    `key` is the request's `Idempotency-Key` header, if any (module docstring).
    """
    from paycycle.errors import DataError
    from retention.saves import KeyReuseError, record_intent

    if key is not None and not _valid_key(key):
        return _bad_key(f"must be 1-{KEY_MAX_CHARS} visible ASCII characters without spaces")
    now = dt.datetime.now(dt.UTC)
    try:
        result = await asyncio.to_thread(
            record_intent,
            _engine(settings.db_url),
            customer_id,
            reason,
            now.date(),
            settings.params.retention,
            key,
            now,
        )
    except KeyReuseError:
        message = "already used for a different request within 24 hours; send a new key"
        return _bad_key(message, 409)  # the request itself is valid: a conflict, not a 422
    except DataError as exc:
        return _reply({"error": str(exc), "detail": [{"loc": ["customer_id"]}]}, 404)
    except Exception as exc:  # the store is down or not migrated
        return _reply({"error": f"store unavailable: {exc.__class__.__name__}", "detail": []}, 503)
    return _reply(result)
