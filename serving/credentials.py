"""The service's secrets, checked once when it starts (the guard, `paycycle serve`).

A weak API token or a short link secret is refused with one line naming the variable, before the
service answers anything: a token shorter than `MIN_TOKEN_CHARS` or still the `.env.example`
placeholder (anything starting with `PLACEHOLDER_PREFIX`) would let anyone who guesses it in; a
link secret shorter than `notify.links.MIN_SECRET_CHARS` would otherwise fail every link request.
"""

from __future__ import annotations

from typing import Any

from notify.links import check_secret
from paycycle.errors import ConfigError

MIN_TOKEN_CHARS = 16
PLACEHOLDER_PREFIX = "change-me"  # every secret in .env.example starts with it


def check_api_token(token: str | None) -> str:
    """`token` if it may guard the API.

    Raises:
        ConfigError: unset, the `.env.example` placeholder, not printable ASCII, or shorter than
            `MIN_TOKEN_CHARS`.
    """
    hint = "e.g. python3 -c 'import secrets; print(secrets.token_urlsafe(24))'"
    if not token:
        raise ConfigError(f"PAYCYCLE_API_TOKEN: not set; export a random token ({hint})")
    if token.strip().lower().startswith(PLACEHOLDER_PREFIX):
        raise ConfigError(f"PAYCYCLE_API_TOKEN: still the .env.example placeholder ({hint})")
    if not (token.isascii() and token.isprintable()) or any(c.isspace() for c in token):
        raise ConfigError(
            f"PAYCYCLE_API_TOKEN: use printable ASCII without spaces (it travels in a header; "
            f"{hint})"
        )
    if len(token) < MIN_TOKEN_CHARS:
        raise ConfigError(
            f"PAYCYCLE_API_TOKEN: must be at least {MIN_TOKEN_CHARS} characters, "
            f"got {len(token)} ({hint})"
        )
    return token


def check_service_secrets(settings: Any) -> None:
    """Check the API token and, when set, the link secret (`PAYCYCLE_LINK_SECRET`).

    Raises:
        ConfigError: naming the variable and the problem.
    """
    check_api_token(settings.api_token)
    if settings.link_secret:  # unset: links are off (`/payment-method` answers 503)
        check_secret(settings.link_secret)
