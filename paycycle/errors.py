"""Errors a user can fix. The CLI prints them as one line; the API maps them to 4xx."""

from __future__ import annotations


class PayCycleError(Exception):
    """Base for expected, user-facing failures (bad input, missing data, bad config)."""


class ConfigError(PayCycleError):
    """A setting has the wrong type or value."""


class DataError(PayCycleError):
    """Input data is missing, truncated or has the wrong schema."""
