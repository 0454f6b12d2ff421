"""Which models the service answers with: loaded by registry alias, swapped as one reference.

`load_models` builds a complete, immutable `ModelSet` (every model loaded, warmed up and given
its own batcher) before the service swaps it in, so a reload never exposes a half-loaded set and
in-flight requests finish on the set they started with. Models are only ever loaded from our
MLflow registry (`inference.registry`, loader chosen by model name), never from a path in a request.

Three registered models: `paycycle-churn` (compiled two-tensor path, `inference.compiled`),
`paycycle-recommender` (`inference.recommender.Recommender`: its compiled SavedModel signature
over a batch's profiles) and `paycycle-offers` (`inference.offer_artifact.RegisteredOfferPolicy`:
the fitted policy's logistic coefficients and effect estimates, evaluated with NumPy). Each has its
own batcher; all share the one scoring thread.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from features.columns import customers_to_columns
from inference.compiled import Compiled, compile_scorer
from inference.profiles import (
    decide_rows,
    priced_to_inputs,
    recommend_scores,
    recommender_frame,
)
from inference.registry import CHAMPION, CHURN_MODEL, OFFERS_MODEL, RECOMMENDER_MODEL
from paycycle.config import Settings
from serving.batching import MicroBatcher
from serving.routing import ChurnRoute

log = logging.getLogger(__name__)

Scorer = Callable[[Any], np.ndarray]


@dataclass(frozen=True)
class LoadedModel:
    """One registered model version, ready to score."""

    name: str
    alias: str
    version: str
    scorer: Scorer
    batcher: MicroBatcher


@dataclass(frozen=True)
class ModelSet:
    """Everything one request may need, from one consistent load."""

    churn: LoadedModel | None = None
    recommender: LoadedModel | None = None
    offers: LoadedModel | None = None
    errors: dict[str, str] = field(default_factory=dict)
    churn_route: ChurnRoute | None = None  # how /churn and /offer are answered (serving.routing)

    def __post_init__(self) -> None:
        if self.churn_route is None and self.churn is not None:
            object.__setattr__(self, "churn_route", ChurnRoute(self.churn))

    @property
    def ready(self) -> bool:
        return self.churn is not None


def warm_up(compiled: Compiled) -> None:
    """Run the compiled path once on one and on three rows before it takes traffic."""
    from inference.smoke import SEED_CUSTOMERS

    for rows in (SEED_CUSTOMERS[:1], SEED_CUSTOMERS):
        compiled(customers_to_columns(rows))


def load_registered(
    name: str, alias: str, settings: Settings, version: str | None = None
) -> tuple[Scorer, str]:  # pragma: no cover - thin seam over training.registry
    """Load `name@alias` (or `version`) from the MLflow registry as a batch scorer and its
    version."""
    from inference.registry import load_scorer

    scorer, version = load_scorer(name, alias=alias, settings=settings, version=version)
    return scorer, str(version)


def seed_profiles() -> list[Any]:
    """The seed's three customers as validated `/recommend` profiles on the growth plan."""
    from inference.smoke import SEED_CUSTOMERS
    from serving.schemas import Profile

    return [Profile.model_validate({**c, "plan_id": 2}) for c in SEED_CUSTOMERS]


# rows a NumPy forward pass scores on the event loop (~50 µs for 1 row, ~0.2 ms for 100): below
# that the hop to the scoring thread costs more than the call; above it the loop would stall
INLINE_ROWS = 128


def _churn_batcher(scorer: Scorer, executor: Executor) -> MicroBatcher:
    compiled = compile_scorer(scorer)
    warm_up(compiled)
    inline = INLINE_ROWS if getattr(scorer, "forward", None) is compiled else 0
    return MicroBatcher(compiled, executor, inline_rows=inline)


def _recommender_batcher(scorer: Any, executor: Executor) -> MicroBatcher:
    """Item scores `(n, 9)` per batch of profiles through the recommender's compiled signature."""
    score = recommend_scores(scorer)
    profiles = seed_profiles()
    for rows in (profiles[:1], profiles):  # run the signature on 1 and n rows before traffic
        score(recommender_frame(rows))
    return MicroBatcher(score, executor, to_columns=recommender_frame)


def _offers_batcher(policy: Any, executor: Executor) -> MicroBatcher:
    """Offer rows per batch of `(profile, P(churn))` pairs, no budget (one request at a time)."""
    decide = decide_rows(policy)
    decide(priced_to_inputs([(p, 0.1) for p in seed_profiles()]))
    return MicroBatcher(decide, executor, to_columns=priced_to_inputs)


BUILDERS: dict[str, tuple[str, Callable[[Any, Executor], MicroBatcher]]] = {
    "churn": (CHURN_MODEL, _churn_batcher),
    "recommender": (RECOMMENDER_MODEL, _recommender_batcher),
    "offers": (OFFERS_MODEL, _offers_batcher),
}


def load_one(
    key: str, alias: str, settings: Settings, executor: Executor, version: str | None = None
) -> LoadedModel:
    """One model of `BUILDERS` by alias (or a pinned `version`, as a rollout's challenger)."""
    name, build = BUILDERS[key]
    scorer, version = load_registered(name, alias, settings, version)
    batcher = build(scorer, executor)
    return LoadedModel(name=name, alias=alias, version=version, scorer=scorer, batcher=batcher)


def load_models(settings: Settings, executor: Executor, alias: str = CHAMPION) -> ModelSet:
    """Load every served model by alias; a model that fails is reported, not fatal.

    Args:
        settings: gives the tracking URI (`MLFLOW_TRACKING_URI` or the project's SQLite store).
        executor: the thread pool the batchers run model calls on.
        alias: registry alias to serve.

    Returns:
        The new model set; `errors` names each model that could not be loaded and why.
    """
    loaded: dict[str, LoadedModel | None] = {}
    errors: dict[str, str] = {}
    for key, (name, _) in BUILDERS.items():
        try:
            loaded[key] = load_one(key, alias, settings, executor)
            log.info("loaded %s@%s version %s", name, alias, loaded[key].version)
        except Exception as exc:  # the service stays up and says why in /readyz
            loaded[key] = None
            errors[name] = f"{exc.__class__.__name__}: {exc}"[:300]
            log.warning("could not load %s@%s: %s", name, alias, errors[name])
    return ModelSet(**loaded, errors=errors)
