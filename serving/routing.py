"""Who answers a churn request: the one place `/churn` and `/offer` get their probabilities.

`ChurnRoute.score(customers)` returns a `ChurnAnswer`: one probability, one model version and
one prediction id per customer (`inference.prediction_ids`), and the request log gets the same
ids through the batcher's observer. The champion answers every customer unless a rollout is
routing (`serving.rollout.RolloutController`: shadow, canary by customer), so the HTTP layer never
needs to know which model answered.
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


class Rollout(Protocol):
    """The challenger's side during a rollout (`serving.rollout.RolloutController`)."""

    async def answer(
        self, champion: Loaded, customers: Sequence[Any], ids: list[str]
    ) -> tuple[np.ndarray, list[str]] | None: ...


class ChurnRoute:
    """The champion answers every customer, unless the rollout answers (some of) them."""

    def __init__(self, champion: Loaded, rollout: Rollout | None = None) -> None:
        self.champion = champion
        self.rollout = rollout

    async def score(self, customers: Sequence[Any]) -> ChurnAnswer:
        ids = new_ids(len(customers))
        if self.rollout is not None:
            routed = await self.rollout.answer(self.champion, customers, ids)
            if routed is not None:
                return ChurnAnswer(routed[0], routed[1], ids)
        probs = await self.champion.batcher.submit(customers, ids)
        return ChurnAnswer(probs, [self.champion.version] * len(customers), ids)
