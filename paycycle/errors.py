"""Errors a user can fix. The CLI prints them as one line; the API maps them to 4xx.

Each class carries the process exit code `paycycle` ends with (README "Exit codes").
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1  # unexpected: a bug or an unhandled library error (`--debug` shows the traceback)
EXIT_USAGE = 2  # bad command line, settings or environment; click's own usage errors use 2 too
EXIT_DATA = 3  # input data or a prerequisite artifact is missing, truncated or malformed
EXIT_UNAVAILABLE = 4  # an outside service or resource is unreachable or busy (database, port)
EXIT_INTERRUPTED = 130  # Ctrl-C / SIGINT, as shells report it


class PayCycleError(Exception):
    """Base for expected, user-facing failures (bad input, missing data, bad config)."""

    exit_code = EXIT_USAGE


class ConfigError(PayCycleError):
    """A setting has the wrong type or value."""

    exit_code = EXIT_USAGE


class DataError(PayCycleError):
    """Input data is missing, truncated or has the wrong schema."""

    exit_code = EXIT_DATA


class UnavailableError(PayCycleError):
    """An outside service or resource is unreachable or busy (a database, a port in use)."""

    exit_code = EXIT_UNAVAILABLE


class RegistryUnavailable(UnavailableError):
    """The MLflow registry cannot be read (down, timing out, answering 5xx): not the same as a
    model or alias that does not exist, which the registry would say it does not have."""

    exit_code = EXIT_UNAVAILABLE
