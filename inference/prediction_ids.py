"""Prediction ids: one per scored customer, so a prediction can be joined to its outcome later.

An id is 32 lowercase hex characters: 16 random per process (drawn again after a fork) and a
16-digit counter, so ids are unique across workers, restarts and machines without coordination,
and cost a string format each. The service (request log, `/churn` answers) and batch scoring
(the `scores` table) use the same function; monitoring joins realized outcomes on them.
"""

from __future__ import annotations

import itertools
import os

_state: tuple[int, str, itertools.count] | None = None


def new_ids(n: int) -> list[str]:
    """`n` fresh prediction ids."""
    global _state
    pid = os.getpid()
    if _state is None or _state[0] != pid:
        _state = (pid, os.urandom(8).hex(), itertools.count())
    _, prefix, counter = _state
    return [f"{prefix}{next(counter):016x}" for _ in range(n)]
