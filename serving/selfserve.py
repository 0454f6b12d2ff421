"""Customer-facing self-serve links, answered in the guard (no API token: the signed link is the
credential). `GET /payment-method?token=…` verifies an "update payment method" token from a
dunning notice (`notify.links`): 200 with the customer id when authentic and unexpired, 403 when
malformed (non-ASCII included), tampered with, for another purpose or expired, 503 when no link
secret is configured. A secret too short to use stops the service at start (`serving.credentials`).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

from notify.links import UPDATE_PAYMENT, LinkError, verify

SELF_SERVE_PATHS = {"/payment-method": UPDATE_PAYMENT}


async def answer(scope: dict[str, Any], send: Any, secret: str | None, reply: Any) -> None:
    """Verify the `token` query parameter for the path's purpose and reply with JSON."""
    if scope["method"] not in ("GET", "HEAD"):
        await reply(send, 405, {"error": "method not allowed"}, [(b"allow", b"GET")])
        return
    if not secret:
        await reply(send, 503, {"error": "self-serve links are not configured"})
        return
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    token = (query.get("token") or [""])[0]
    try:
        claims = verify(token, secret, SELF_SERVE_PATHS[scope["path"]])
    except LinkError as exc:
        await reply(send, 403, {"error": f"link refused: {exc}"})
        return
    await reply(
        send,
        200,
        {
            "customer_id": claims.customer_id,
            "purpose": claims.purpose,
            "expires_at": claims.expires_at.isoformat(),
        },
    )
