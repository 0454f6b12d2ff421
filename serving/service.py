"""The PayCycle scoring API (BentoML 1.4): `bentoml serve serving.service:PayCycle`.

Routes: `POST /churn`, `POST /recommend`, `POST /offer`, `POST /cancel-intent`,
`POST /admin/reload`, `GET /admin/reload`, `GET /healthz`, `GET /readyz`, `GET /metrics`,
OpenAPI at `/docs.json`. Token auth, the body limit and 422s come from `serving.guard.Guard`.
Models are the registry's `champion` versions (`serving.models`); `POST /admin/reload` or SIGHUP
to the worker process starts loading the current champions in the background (one load at a
time, with its own deadline `serving.reload_timeout_s`; `serving.reload`) and answers 202 with
its status at once; `GET /admin/reload` follows it. The new set is swapped in as one reference,
so requests in flight finish on the set they started with, and the old set serves until then.

Speed: `POST /churn` is answered by the guard in front of BentoML's middlewares (`serving.hot`,
`HOT_ROUTES`): one pydantic call parses and validates the body against the `churn` API's own input
model, requests are queued on a `MicroBatcher` and scored together in one compiled TF call per
batch on a worker thread; no `model.predict`, no pandas on the path. The `@bentoml.api` method
stays: it documents the route in OpenAPI and answers through the same `_score_churn`.

`/recommend` and `/offer` take profiles (`serving.schemas.Profile`: the churn features plus plan,
owned add-ons and usage history) and go through their own batchers on the same scoring thread:
the recommender's compiled signature over the batch, and for offers P(churn) from the churn
champion's batcher (coalesced with `/churn` traffic) followed by the registered policy's EV rule.
A request is decided on its own, without the monthly budget (`paycycle offers` applies that to
the month's whole list).
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import gc
import json
import logging
import math
import os
import signal
from concurrent.futures import ThreadPoolExecutor

import bentoml
import numpy as np
import orjson
from pydantic import ValidationError
from starlette.responses import Response

from monitoring.requests import RequestLogger
from paycycle.errors import DataError
from serving import traffic
from serving.cancel import CancelIntentResult, CancelReason, CustomerId
from serving.guard import Guard
from serving.reload import Reloader, ReloadRefused
from serving.routing import ChurnRoute
from serving.schemas import (
    ChurnScore,
    Customers,
    ModelStatus,
    OfferDecision,
    Profiles,
    Readiness,
    Recommendation,
    ReloadStatus,
    TopK,
)

log = logging.getLogger("paycycle.serving")

# Per worker: past MAX_CONCURRENCY requests in flight the next one gets 503 at once; a request
# running longer than TIMEOUT_S gets a 504 instead of hanging its client (serving.traffic).
TIMEOUT_S = 10
MAX_CONCURRENCY = 256
HOT_ROUTES = {"/churn": "answer_churn"}  # answered in front of BentoML's middlewares (serving.hot)
Answer = tuple[int, bytes]  # HTTP status, JSON body


@bentoml.service(
    name="PayCycle",
    traffic={"timeout": TIMEOUT_S, "max_concurrency": MAX_CONCURRENCY},
    workers=1,
    logging={"access": {"enabled": False}},
)
class PayCycle:
    """Churn, recommendations and retention offers from the champion models."""

    def __init__(self) -> None:
        from paycycle import config
        from serving.models import ModelSet

        self.settings = config.load()
        _configure_tensorflow(self.settings.params.serving.tf_threads)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score")
        self._models = ModelSet()
        self._requests = _request_logger(self.settings)
        self._rollout = _rollout_controller(self.settings, self._executor, self._requests)
        self._models = self._load()
        self._reloader = Reloader(
            self._load, self._swap, self.settings.params.serving.reload_timeout_s
        )
        # TF and the models are millions of long-lived objects: keep them out of the cyclic GC's
        # scans, which otherwise stall a request every few thousand (p99 spikes of ~100 ms).
        gc.collect()
        gc.freeze()

    def _load(self):
        """Load the champions; the churn batcher hands each scored batch to the request log."""
        from serving.models import load_models

        models = load_models(self.settings, self._executor)
        if models.churn is not None and self._requests is not None:
            models.churn.batcher.observer = functools.partial(
                _log_batch, self._requests, models.churn.version
            )
        if models.churn is not None:  # the rollout outlives reloads of the champion
            route = ChurnRoute(models.churn, self._rollout)
            models = dataclasses.replace(models, churn_route=route)
        return models

    @bentoml.on_shutdown
    def _flush_request_log(self) -> None:
        if self._requests is not None:
            self._requests.close()
        self._reloader.close()
        self._rollout.close()

    @bentoml.on_startup
    def _install_sighup(self) -> None:
        loop = asyncio.get_event_loop()
        loop.add_signal_handler(signal.SIGHUP, self._reloader.start)
        self._rollout.start(on_promoted=self._reloader.start)  # a promotion reloads the champion

    def _swap(self, new) -> tuple[dict[str, str | None], str | None]:
        """Swap a freshly loaded set in (on the event loop, after the load thread is done).

        Returns:
            (versions now served, what was kept from the old set and why, or None).

        Raises:
            ReloadRefused: no churn model in the new set; the old set keeps serving.
        """
        from serving.models import BUILDERS

        old = self._models
        if new.churn is None:
            raise ReloadRefused(f"no churn model loaded, kept the old models: {new.errors}")
        kept = {
            key: getattr(old, key)
            for key in ("recommender", "offers")
            if getattr(new, key) is None and getattr(old, key) is not None
        }
        if kept:  # a model that failed to reload keeps serving its loaded version
            new = dataclasses.replace(new, **kept)
        self._models = new  # one reference assignment: atomic for every reader
        log.info("serving churn version %s", new.churn.version)
        versions = {
            name: (loaded.version if (loaded := getattr(new, key)) else None)
            for key, (name, _) in BUILDERS.items()
        }
        problem = None
        if new.errors:
            problem = "; ".join(
                f"{name}: {'kept the old version' if name in _names(kept) else 'not loaded'}"
                f" ({error})"
                for name, error in new.errors.items()
            )
        return versions, problem

    def reload_status(self) -> ReloadStatus:
        """The background reload's status (served by the guard at GET /admin/reload)."""
        return self._reloader.status()

    def readiness(self, errors: dict[str, str] | None = None) -> Readiness:
        """Models loaded and their versions (served by the guard at GET /readyz)."""
        from inference.registry import CHAMPION
        from serving.models import BUILDERS

        models = self._models
        errors = {**models.errors, **(errors or {})}
        statuses = []
        for key, (name, _) in BUILDERS.items():
            loaded = getattr(models, key)
            statuses.append(
                ModelStatus(
                    name=name,
                    alias=CHAMPION,
                    version=loaded.version if loaded else None,
                    loaded=loaded is not None,
                    error=errors.get(name),
                    model_calls=loaded.batcher.calls if loaded else 0,
                    requests_per_call=(
                        loaded.batcher.requests / loaded.batcher.calls
                        if loaded and loaded.batcher.calls
                        else 0.0
                    ),
                )
            )
        return Readiness(
            ready=models.ready, models=statuses, pid=os.getpid(), rollout=self._rollout.status()
        )

    def _risk_band(self, probs: list[float]) -> list[str]:
        """Band per probability, on plain floats (NumPy's string `where` was 6% of the process)."""
        low, high = self.settings.params.serving.risk_bands
        return ["low" if p < low else "medium" if p < high else "high" for p in probs]

    async def answer_churn(self, body: bytes) -> Answer:
        """`POST /churn` on the hot path (`serving.hot`, in front of BentoML's middlewares): the
        body parsed and validated in one pydantic call against the `churn` API's own input model
        (so the same 422 as BentoML's), then scored like `churn`."""
        try:
            customers = _CHURN_INPUT.model_validate_json(body).customers
        except ValidationError as exc:  # BentoML's body for it, with our status (serving.guard)
            error = f"{exc.error_count()} validation error for {exc.title}"
            return _encode(
                {"error": error, "detail": exc.errors(include_context=False, include_input=False)},
                422,
            )
        return await self._score_churn(customers)

    @bentoml.api(route="/churn")
    async def churn(self, customers: Customers) -> list[ChurnScore]:
        """P(churn in the next 30 days) per customer, with its risk band and model version."""
        return _response(await self._score_churn(customers))

    async def _score_churn(self, customers: list) -> Answer:
        route = self._models.churn_route
        if route is None:
            return _unavailable("no churn model loaded; see /readyz")
        answer = await route.score(customers)  # (the batcher logged the batch for the monitor)
        probs = answer.probs.tolist()
        if not all(map(math.isfinite, probs)):
            return _not_finite(answer.probs)
        rows = zip(
            customers,
            probs,
            self._risk_band(probs),
            answer.versions,
            answer.prediction_ids,
            strict=True,
        )
        return 200, orjson.dumps(  # json.dumps was 1.5-2% of the process in a profile
            [
                {
                    "customer_id": c.customer_id,
                    "churn_probability": p,
                    "risk_band": b,
                    "model_version": v,
                    "prediction_id": i,
                }
                for c, p, b, v, i in rows
            ]
        )

    @bentoml.api(route="/recommend")
    async def recommend(self, customers: Profiles, k: TopK = 3) -> list[Recommendation]:
        """Next-best plans and add-ons per customer, ranked, with the recommender's version.

        Owned add-ons, the current plan and plan moves the usage does not call for (an upgrade
        needs usage near or above the plan's included units, a downgrade well below) are never
        ranked, so a customer may get fewer than `k` items.
        """
        from inference.recommender import rank_items

        model = self._models.recommender
        if model is None:
            return _response(_unavailable("no recommender model loaded; see /readyz"))
        try:
            scores = await model.batcher.submit(customers)
        except DataError as exc:
            return _response(_data_error(exc))
        version = model.version
        return _json(
            [
                {"customer_id": c.customer_id, "items": items, "model_version": version}
                for c, items in zip(customers, rank_items(scores, k), strict=True)
            ]
        )

    @bentoml.api(route="/offer")
    async def offer(self, customers: Profiles) -> list[OfferDecision]:
        """The retention offer with the best positive expected value per customer, or none.

        P(churn) comes from the churn champion in the same request; EV = P(accept)·(revenue
        kept − cost) with the registered policy's acceptance model and retention effects.
        """
        models = self._models
        route, policy = models.churn_route, models.offers
        if route is None or policy is None:
            return _response(_unavailable("no churn model or offer policy loaded; see /readyz"))
        answer = await route.score(customers)
        probs = answer.probs
        if not np.isfinite(probs).all():
            return _response(_not_finite(probs))
        try:
            rows = await policy.batcher.submit(list(zip(customers, probs.tolist(), strict=True)))
        except DataError as exc:
            return _response(_data_error(exc))
        policy_version = policy.version
        return _json(
            [
                {
                    "customer_id": c.customer_id,
                    "offer": offer,
                    "expected_value": round(float(ev), 4),
                    "accept_probability": float(p_accept),
                    "reason": reason,
                    "churn_probability": p,
                    "model_version": v,
                    "policy_version": policy_version,
                    "prediction_id": i,
                }
                for c, p, v, i, (offer, ev, p_accept, reason) in zip(
                    customers,
                    probs.tolist(),
                    answer.versions,
                    answer.prediction_ids,
                    rows,
                    strict=True,
                )
            ]
        )

    @bentoml.api(route="/cancel-intent")
    async def cancel_intent(
        self, customer_id: CustomerId, reason: CancelReason, ctx: bentoml.Context
    ) -> CancelIntentResult:
        """The cancel page's reason survey: record the visit, answer with the matched offer.

        Send an `Idempotency-Key` header to retry safely: the same key and body within 24 hours
        get the same answer; the same key with a different body is a 409.
        """
        from serving.cancel import IDEMPOTENCY_HEADER, cancel_intent

        key = ctx.request.headers.get(IDEMPOTENCY_HEADER)
        answer = await cancel_intent(self.settings, customer_id, reason, key)
        ctx.response.status_code = answer.status_code  # BentoML sets the status from ctx
        return answer

    @bentoml.api(route="/admin/reload")
    async def reload(self) -> ReloadStatus:
        """Start loading the registry's current champions in the background, or join the load
        already running, and answer 202 with its status at once (`GET /admin/reload` follows
        it). The old models serve until the new set is loaded, then both swap as one. 409 while
        a load that passed its deadline (`serving.reload_timeout_s`) is still running."""
        accepted, status = self._reloader.start()
        return _json(status.model_dump(mode="json"), 202 if accepted else 409)


def _names(kept: dict) -> set[str]:
    return {model.name for model in kept.values()}


def _encode(payload: object, status: int = 200) -> Answer:
    return status, json.dumps(payload).encode()


def _response(answer: Answer) -> Response:
    """Serialise a response ourselves: BentoML rebuilds the output's JSON schema on every
    response it serialises (~0.1–0.4 ms, a third of a small request), so the API methods return
    a ready `Response`; the annotated return type still documents the body in OpenAPI."""
    status, body = answer
    return Response(body, status, media_type="application/json")


def _json(payload: object, status: int = 200) -> Response:
    return _response(_encode(payload, status))


def _unavailable(reason: str) -> Answer:
    return _encode({"error": reason, "detail": []}, 503)


def _not_finite(probs: np.ndarray) -> Answer:
    bad = int(np.flatnonzero(~np.isfinite(probs))[0])
    return _encode(
        {
            "error": "the model gave no finite probability for this customer",
            "detail": [{"loc": ["customers", bad], "msg": "features out of model range"}],
        },
        422,
    )


def _data_error(exc: DataError) -> Answer:
    """A model-side input check (`field: problem`) the request schema did not catch, as 422."""
    message = str(exc)
    field = message.split(":", 1)[0] if ":" in message else "customers"
    return _encode(
        {"error": message, "detail": [{"loc": ["customers", field], "msg": message}]}, 422
    )


def _log_batch(
    requests: RequestLogger,
    version: str,
    customers: list,
    columns: dict,
    probs: np.ndarray,
    ids: list[str | None],
) -> None:
    """The churn batcher's observer: every scored batch (from /churn and /offer) with the
    feature columns it was scored on and its prediction ids, for the monitor."""
    requests.log_scored(customers, probs, version, columns, ids)


def _request_logger(settings) -> RequestLogger | None:
    """The /churn request log the monitor reads (`drift.requests_dir`), unless switched off.

    Its flush failures and dropped rows are counted in `/metrics` (`serving.metrics`); the
    temporary files a crashed worker left and the days past the retention are removed now."""
    from serving.metrics import request_log_counters

    drift = settings.params.drift
    if not drift.log_requests:
        return None
    counters = request_log_counters()
    logger = RequestLogger(
        settings.path(drift.requests_dir),
        drift.log_flush_rows,
        drift.request_log_max_rows,
        retention_days=drift.request_log_retention_days,
        failures=counters.flush_failures,
        dropped=counters.dropped_rows,
    )
    logger.tidy()
    return logger


def _rollout_controller(settings, executor, requests: RequestLogger | None):
    """The challenger's routing and guards (`serving.rollout`); its batches go to the request log
    under the challenger's version, with the same prediction ids as the champion's."""
    from serving.rollout import RolloutController, load_challenger

    return RolloutController(settings, load_challenger(settings, executor), requests)


def _configure_tensorflow(threads: int) -> None:
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:  # already initialised in this process
        pass


_CHURN_INPUT = PayCycle.apis["churn"].input_spec  # BentoML's model of the /churn body
PayCycle.add_asgi_middleware(
    Guard, hot=HOT_ROUTES, timeout=TIMEOUT_S, max_concurrency=MAX_CONCURRENCY
)
traffic.install()  # BentoML's request timeout, minus its per-request timer leak
