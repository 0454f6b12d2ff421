"""Who answers a churn request: the one place `/churn` and `/offer` get their probabilities.

`ChurnRoute.score(customers)` returns a `ChurnAnswer`: one probability, one model version and
one prediction id per customer (`inference.prediction_ids`), and the request log gets the same
ids through the batcher's observer. Today the champion answers every customer; a rollout
(shadow, canary) routes here too, so the HTTP layer never needs to know which model answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from inference.prediction_ids import new_ids
from serving.batching import MicroBatcher


class Loaded(Protocol):
    """A loaded model version (`serving.models.LoadedModel`)."""

    version: str
    batcher: MicroBatcher


@dataclass(frozen=True)
class ChurnAnswer:
    """One request's scores: row i is customer i's probability, version and prediction id."""

    probs: np.ndarray
    versions: list[str]
    prediction_ids: list[str]


class ChurnRoute:
    """The champion answers every customer."""

    def __init__(self, champion: Loaded) -> None:
        self.champion = champion

    async def score(self, customers: Sequence[Any]) -> ChurnAnswer:
        ids = new_ids(len(customers))
        probs = await self.champion.batcher.submit(customers, ids)
        return ChurnAnswer(probs, [self.champion.version] * len(customers), ids)
