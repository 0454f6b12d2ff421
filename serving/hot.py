"""Hot routes: `POST /churn` answered in front of BentoML's per-request machinery.

Why: on this 2-core box a bare Starlette endpoint answers ~9k req/s, BentoML's trivial endpoint
~1.7k; nearly all of the difference is BentoML's middlewares (OpenTelemetry ~60% of it, the
Prometheus metrics middleware ~25%, measured one at a time with wrk, issue 19) and its request
context, IO descriptors and router. The model costs microseconds per customer.

`serving.guard.Guard` runs in front of BentoML's middlewares (`serving.traffic`) and, after its
token, body-limit and content-type checks, hands a hot route's request to `hot_routes(...)`:

- 503 past `max_concurrency` requests in flight and 504 past `timeout` seconds: the same
  `serving.traffic` middlewares (and bodies) BentoML uses, with their own semaphore for the hot
  routes (BentoML's covers the other routes);
- the body goes to a service method `answer(body: bytes) -> (status, JSON bytes)`, which parses
  and validates it in one pydantic call and scores it (`PayCycle.answer_churn`);
- `/metrics` gets `paycycle_hot_requests_total{route,status}` and
  `paycycle_hot_request_duration_seconds{route}` (`serving.metrics`) instead of BentoML's
  per-request series, and hot routes get no OpenTelemetry span (tracing's sample rate is 0 here).

BentoML keeps serving every other route, the OpenAPI document (the `@bentoml.api` methods stay
and answer through the same code), packaging and `bentoml serve`.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from serving.traffic import CancellingTimeout, OverloadIs503

log = logging.getLogger("paycycle.serving")

JSON_HEADERS = [(b"content-type", b"application/json")]
STARTING = json.dumps({"error": "the service is starting; retry shortly", "detail": []}).encode()
# BentoML's answer to an exception in an API method, so clients see one 500 body either way
UNEXPECTED = json.dumps(
    {"error": "An unexpected error has occurred, please check the server log."}
).encode()


async def read_body(receive: Any) -> bytes | None:
    """The whole request body (None if the client went away first)."""
    message = await receive()
    if message["type"] != "http.request":
        return None
    if not message.get("more_body", False):
        return message.get("body", b"")
    chunks = [message.get("body", b"")]
    while message.get("more_body", False):
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunks.append(message.get("body", b""))
    return b"".join(chunks)


class HotRoutes:
    """ASGI app: `path -> name of the service method that answers it`."""

    def __init__(self, methods: dict[str, str]) -> None:
        self.methods = methods
        self._instance: Any = None
        self._metrics: Any = None

    def _service(self) -> Any:
        if self._instance is None:
            import bentoml
            from bentoml.exceptions import BentoMLException

            try:
                self._instance = bentoml.get_current_service()
            except BentoMLException:  # "isn't instantiated yet": still starting
                return None
        return self._instance

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        start = time.perf_counter()
        path = scope["path"]
        body = await read_body(receive)
        if body is None:
            return
        instance = self._service()
        if instance is None:
            status, payload = 503, STARTING
        else:
            try:
                status, payload = await getattr(instance, self.methods[path])(body)
            except Exception:  # one JSON 500, the traceback in the log (as BentoML does)
                log.exception("%s failed", path)
                status, payload = 500, UNEXPECTED
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [*JSON_HEADERS, (b"content-length", str(len(payload)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": payload})
        if self._metrics is None:
            from serving.metrics import hot_route_metrics

            self._metrics = hot_route_metrics()
        self._metrics.observe(path, status, time.perf_counter() - start)


def hot_routes(methods: dict[str, str], timeout: float, max_concurrency: int) -> Any:
    """The ASGI app answering `methods`' paths, behind the overload (503) and timeout (504)
    middlewares BentoML applies to its own routes."""
    answer = CancellingTimeout(HotRoutes(methods), timeout=timeout)
    return OverloadIs503(answer, max_concurrency=max_concurrency)
