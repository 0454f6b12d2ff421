"""Hot routes: `POST /churn` answered in front of BentoML's per-request machinery.

Why: on this 2-core box a bare Starlette endpoint answers ~9k req/s, BentoML's trivial endpoint
~1.7k; nearly all of the difference is BentoML's middlewares (OpenTelemetry ~60% of it, the
Prometheus metrics middleware ~25%, measured one at a time with wrk, issue 19) and its request
context, IO descriptors and router. The model costs microseconds per customer.

`serving.guard.Guard` runs in front of BentoML's middlewares (`serving.traffic`) and, after its
token, body-limit and content-type checks, hands a hot route's request to `HotRoutes`:

- 503 past `max_concurrency` requests in flight and 504 past `timeout` seconds, with the bodies
  of `serving.traffic`'s middlewares (their own count: BentoML's covers the other routes). Not
  those middlewares themselves: the timeout's extra task per request cost ~50–90 µs (measured
  in-process), more than the rest of the hot path; `asyncio.timeout` on the request's own task
  and an integer count cost a few;
- the body goes to a service method `answer(body: bytes) -> (status, JSON bytes)`, which parses
  and validates it in one pydantic call and scores it (`PayCycle.answer_churn`);
- `/metrics` gets `paycycle_hot_requests_total{route,status}` and
  `paycycle_hot_request_duration_seconds{route}` (`serving.metrics`) instead of BentoML's
  per-request series, and hot routes get no OpenTelemetry span (tracing's sample rate is 0 here).

BentoML keeps serving every other route, the OpenAPI document (the `@bentoml.api` methods stay
and answer through the same code), packaging and `bentoml serve`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from serving.traffic import OVERLOADED, RETRY_AFTER, timed_out

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


async def _send(send: Any, status: int, payload: bytes, headers: tuple = ()) -> None:
    length = (b"content-length", str(len(payload)).encode())
    start = {"type": "http.response.start", "status": status}
    await send({**start, "headers": [*JSON_HEADERS, length, *headers]})
    await send({"type": "http.response.body", "body": payload})


class HotRoutes:
    """ASGI app: `path -> name of the service method that answers it`, with 503 past
    `max_concurrency` requests in flight and 504 past `timeout` seconds to the answer."""

    def __init__(self, methods: dict[str, str], timeout: float, max_concurrency: int) -> None:
        self.methods = methods
        self.timeout = timeout
        self.max_concurrency = max_concurrency
        self.in_flight = 0
        self._overloaded = json.dumps(OVERLOADED).encode()
        self._timed_out = json.dumps(timed_out(timeout)).encode()
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
        if self.in_flight >= self.max_concurrency:
            await _send(send, 503, self._overloaded, ((b"retry-after", RETRY_AFTER.encode()),))
            return
        self.in_flight += 1
        try:
            await self._answer(scope, receive, send)
        finally:
            self.in_flight -= 1

    async def _answer(self, scope: Any, receive: Any, send: Any) -> None:
        start = time.perf_counter()
        path = scope["path"]
        try:
            async with asyncio.timeout(self.timeout):
                body = await read_body(receive)
                if body is None:
                    return
                status, payload = await self._call(path, body)
        except TimeoutError:
            status, payload = 504, self._timed_out
        await _send(send, status, payload)
        if self._metrics is None:
            from serving.metrics import hot_route_metrics

            self._metrics = hot_route_metrics()
        self._metrics.observe(path, status, time.perf_counter() - start)

    async def _call(self, path: str, body: bytes) -> tuple[int, bytes]:
        instance = self._service()
        if instance is None:
            return 503, STARTING
        try:
            return await getattr(instance, self.methods[path])(body)
        except (TimeoutError, asyncio.CancelledError):
            raise
        except Exception:  # one JSON 500, the traceback in the log (as BentoML does)
            log.exception("%s failed", path)
            return 500, UNEXPECTED
