"""Fault tests reuse the service tests' registry with real champions (trained once a session)."""

from tests.service.conftest import serving_store  # noqa: F401  (a fixture, used by name)
