"""The retention holdout: a fixed random share of customers who get no offers or
recommendation notices, so that uplift can be measured against them.

Assignment is a deterministic hash of (salt, customer id): stable across runs and processes,
independent of anything about the customer, and changed as a whole by changing the salt.
"""

from __future__ import annotations

import hashlib

import numpy as np


def holdout_draw(customer_id: int, salt: str) -> float:
    """A uniform number in [0, 1) fixed by the salt and the customer id."""
    digest = hashlib.blake2b(f"{salt}:{int(customer_id)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def in_holdout(customer_ids: object, share: float, salt: str) -> np.ndarray:
    """Boolean mask: which customers are in the holdout (`share` of them, by hash)."""
    ids = np.atleast_1d(np.asarray(customer_ids)).astype(np.int64)
    if share <= 0:
        return np.zeros(len(ids), dtype=bool)
    return np.array([holdout_draw(int(c), salt) < share for c in ids], dtype=bool)
