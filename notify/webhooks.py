"""Standard Webhooks signatures (https://www.standardwebhooks.com): sign deliveries, verify them.

A delivery carries three headers:

* ``webhook-id``: the message id; the same on every retry of one notice, so receivers can
  de-duplicate on it;
* ``webhook-timestamp``: Unix seconds when this attempt was signed;
* ``webhook-signature``: space-separated ``v1,<base64 HMAC-SHA256(key, "id.timestamp.body")>``,
  one per signing secret, so a receiver holding either the old or the new secret accepts the
  delivery while a key rotates.

Secrets have the form ``whsec_<base64 key>`` (the key is what is base64-decoded, 24–64 random
bytes recommended). The sender reads them from ``$PAYCYCLE_WEBHOOK_SECRET`` (several separated by
spaces or commas during a rotation). `verify` is the helper receivers use: it refuses a
timestamp more than `tolerance` seconds (default 5 minutes) away from now in either direction,
so a captured delivery cannot be replayed later, and compares signatures in constant time.
This module needs only the standard library, so a receiver can vendor it as it is.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SECRET_PREFIX = "whsec_"
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"
TOLERANCE_SECONDS = 300
MIN_KEY_BYTES = 16
_SPLIT = re.compile(r"[\s,]+")


class WebhookSecretError(ValueError):
    """A signing secret is not of the form ``whsec_<base64>`` or its key is too short."""


class WebhookVerificationError(ValueError):
    """A delivery's headers are missing, stale, from the future or carry no matching signature."""


def parse_secrets(secrets: str | Iterable[str]) -> list[bytes]:
    """The HMAC keys of one or more ``whsec_<base64>`` secrets (a string may hold several).

    Raises:
        WebhookSecretError: no secret, a secret without the prefix, bad base64, or a short key.
    """
    items = _SPLIT.split(secrets.strip()) if isinstance(secrets, str) else list(secrets)
    items = [s.strip() for s in items if s and s.strip()]
    if not items:
        raise WebhookSecretError("no webhook secret given")
    keys = []
    for n, secret in enumerate(items, 1):
        if not secret.startswith(SECRET_PREFIX):
            raise WebhookSecretError(f"secret {n}: expected whsec_<base64>, got another form")
        try:
            key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise WebhookSecretError(f"secret {n}: the part after whsec_ is not base64") from None
        if len(key) < MIN_KEY_BYTES:
            raise WebhookSecretError(
                f"secret {n}: key is {len(key)} bytes, need at least {MIN_KEY_BYTES}"
            )
        keys.append(key)
    return keys


def _signature(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    return base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def sign(secrets: str | Iterable[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for `body`, one ``v1`` signature per secret.

    Args:
        secrets: one or more ``whsec_`` secrets (several while a key rotates).
        msg_id: the message id, stable across retries of one message.
        timestamp: Unix seconds of this attempt.
        body: the exact bytes sent.
    """
    if not msg_id or any(c in msg_id for c in ". \r\n"):
        raise ValueError(f"msg_id: must be non-empty without dots or whitespace, got {msg_id!r}")
    keys = parse_secrets(secrets)
    sigs = " ".join(f"v1,{_signature(k, msg_id, int(timestamp), body)}" for k in keys)
    return {ID_HEADER: msg_id, TIMESTAMP_HEADER: str(int(timestamp)), SIGNATURE_HEADER: sigs}


@dataclass(frozen=True)
class Verified:
    """An authentic delivery: its id (de-duplicate on it) and signing time."""

    msg_id: str
    timestamp: int


def verify(
    secrets: str | Iterable[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: float = TOLERANCE_SECONDS,
    now: float | None = None,
) -> Verified:
    """Check a received delivery; the receiver's side of `sign`.

    Args:
        secrets: the receiver's secret(s); any one matching any ``v1`` signature is enough.
        headers: the request headers (any capitalisation).
        body: the raw request body, byte for byte.
        tolerance: seconds the timestamp may differ from `now` (default 5 minutes).
        now: Unix seconds (default: the clock).

    Returns:
        The message id and timestamp.

    Raises:
        WebhookVerificationError: missing header, bad or out-of-tolerance timestamp, or no
            matching signature (tampered body, wrong secret, unknown version).
        WebhookSecretError: a secret is malformed.
    """
    keys = parse_secrets(secrets)
    lower = {k.lower(): v for k, v in headers.items()}
    missing = [h for h in (ID_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER) if not lower.get(h)]
    if missing:
        raise WebhookVerificationError(f"{missing[0]}: header missing")
    msg_id, stamp = lower[ID_HEADER], lower[TIMESTAMP_HEADER]
    if not stamp.isdigit():
        raise WebhookVerificationError(f"{TIMESTAMP_HEADER}: not Unix seconds ({stamp[:20]!r})")
    timestamp = int(stamp)
    now = time.time() if now is None else now
    if timestamp < now - tolerance:
        raise WebhookVerificationError(f"{TIMESTAMP_HEADER}: too old (replay?)")
    if timestamp > now + tolerance:
        raise WebhookVerificationError(f"{TIMESTAMP_HEADER}: too far in the future")
    offered = []
    for part in lower[SIGNATURE_HEADER].split():
        version, _, sig = part.partition(",")
        if version == "v1" and sig:
            offered.append(sig.encode())
    expected = [_signature(k, msg_id, timestamp, body).encode() for k in keys]
    # compare every pair (no early exit), so timing does not tell which one matched
    ok = False
    for sig in offered:
        for want in expected:
            ok |= hmac.compare_digest(sig, want)
    if not ok:
        raise WebhookVerificationError(f"{SIGNATURE_HEADER}: no matching v1 signature")
    return Verified(msg_id, timestamp)


def message_id_for(dedup_key: str) -> str:
    """A stable ``webhook-id`` for a notice's dedup key (retries reuse it)."""
    return "msg_" + hashlib.sha256(dedup_key.encode()).hexdigest()[:32]
