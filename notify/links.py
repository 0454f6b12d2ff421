"""Signed self-serve links (update payment method): HMAC tokens.

A token is ``base64url(claims JSON) . base64url(HMAC-SHA256(secret, claims))`` with claims
``{"c": customer_id, "p": purpose, "exp": unix seconds}``. `verify` refuses anything that is not
plain ASCII, recomputes the MAC and compares the bytes in constant time, then checks purpose and
expiry, so a malformed, tampered, foreign or expired token is a `LinkError` (never another
exception). The secret is `PAYCYCLE_LINK_SECRET` (settings.link_secret), never in git; whoever
serves or signs links checks it once at start (`check_secret`).

Only purposes a route serves get links: `serving.selfserve` answers ``/payment-method``; there is
no self-serve "extend" route, so cancellation notices carry no link.

Notices are stored with the links they need named, not signed (`payload["links"]`); the outbox
calls `with_links` when it sends, so a link expires `link_ttl_hours` after the send (a retry
gets a fresh link) and no bearer token sits in the outbox table.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from paycycle.errors import ConfigError, PayCycleError

UPDATE_PAYMENT = "update_payment_method"
PATHS = {UPDATE_PAYMENT: "/payment-method"}  # purpose -> the route that serves it
PURPOSES = tuple(PATHS)
LINKS_FIELD = "links"  # payload key naming the links a notice needs: {url field: purpose}
MIN_SECRET_CHARS = 16
MAX_TOKEN_CHARS = 1024  # a real token is ~120 characters


class LinkError(PayCycleError):
    """A link token that is malformed, tampered with, for another purpose, or expired."""


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, body: str) -> str:
    return _b64(hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest())


def check_secret(secret: str | None) -> str:
    """`secret` if it is long enough to sign links.

    Raises:
        ConfigError: unset or shorter than `MIN_SECRET_CHARS` (names `PAYCYCLE_LINK_SECRET`).
    """
    if not secret or len(secret) < MIN_SECRET_CHARS:
        raise ConfigError(
            f"PAYCYCLE_LINK_SECRET: must be set to at least {MIN_SECRET_CHARS} characters"
        )
    return secret


def sign(customer_id: int, purpose: str, expires_at: dt.datetime, secret: str) -> str:
    """A token for `customer_id` and `purpose`, valid until `expires_at` (tz-aware)."""
    if purpose not in PURPOSES:
        raise ValueError(f"purpose: unknown {purpose!r}")
    if expires_at.tzinfo is None:
        raise ValueError("expires_at: pass a timezone-aware datetime")
    claims = {"c": int(customer_id), "p": purpose, "exp": int(expires_at.timestamp())}
    body = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    return f"{body}.{_mac(check_secret(secret), body)}"


@dataclass(frozen=True)
class LinkClaims:
    customer_id: int
    purpose: str
    expires_at: dt.datetime


def verify(token: str, secret: str, purpose: str, now: dt.datetime | None = None) -> LinkClaims:
    """The token's claims if it is authentic, for `purpose` and not expired.

    Raises:
        LinkError: malformed, bad signature, other purpose, or expired.
    """
    secret = check_secret(secret)
    token = token or ""
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise LinkError("token: malformed")
    body, sep, mac = token.partition(".")
    if not sep or not body or not mac:
        raise LinkError("token: malformed")
    # bytes, not str: compare_digest raises TypeError on a str with non-ASCII characters
    if not hmac.compare_digest(mac.encode(), _mac(secret, body).encode()):
        raise LinkError("token: bad signature")
    try:
        claims: dict[str, Any] = json.loads(_unb64(body))
        cid, what, exp = int(claims["c"]), str(claims["p"]), int(claims["exp"])
        expires = dt.datetime.fromtimestamp(exp, dt.UTC)
    except (ValueError, KeyError, TypeError, OverflowError, OSError):
        raise LinkError("token: malformed claims") from None
    if what != purpose:
        raise LinkError(f"token: issued for {what!r}, not {purpose!r}")
    if (now or dt.datetime.now(dt.UTC)) >= expires:
        raise LinkError(f"token: expired at {expires.isoformat()}")
    return LinkClaims(cid, what, expires)


@dataclass(frozen=True)
class LinkSigner:
    """Builds signed URLs for notices (base URL, TTL and secret from settings)."""

    secret: str
    base_url: str
    ttl: dt.timedelta

    def url(self, customer_id: int, purpose: str, issued: dt.datetime) -> str:
        token = sign(customer_id, purpose, issued + self.ttl, self.secret)
        return f"{self.base_url.rstrip('/')}{PATHS[purpose]}?{urlencode({'token': token})}"


def with_links(
    payload: dict[str, Any], customer_id: int, signer: LinkSigner | None, issued: dt.datetime
) -> dict[str, Any]:
    """`payload` without its link names, plus a URL signed at `issued` for each of them.

    Without a signer (no `PAYCYCLE_LINK_SECRET`) the notice goes out without links.

    Raises:
        ValueError: a link names an unknown purpose.
    """
    wanted = payload.get(LINKS_FIELD)
    out = {k: v for k, v in payload.items() if k != LINKS_FIELD}
    if signer is None or not isinstance(wanted, dict):
        return out
    for field, purpose in wanted.items():
        out[str(field)] = signer.url(customer_id, str(purpose), issued)
    return out


def make_signer(settings: Any) -> LinkSigner | None:
    """A signer from settings, or None when `PAYCYCLE_LINK_SECRET` is unset.

    Raises:
        ConfigError: the secret is set but too short.
    """
    if not settings.link_secret:
        return None
    r = settings.params.retention
    return LinkSigner(
        check_secret(settings.link_secret),
        r.link_base_url,
        dt.timedelta(hours=r.link_ttl_hours),
    )
