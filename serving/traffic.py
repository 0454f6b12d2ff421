"""BentoML's request timeout, with its timer cancelled when the request is answered.

BentoML 1.4's `TimeoutMiddleware` (`traffic.timeout`) arms `loop.call_later(timeout, ...)` per
request and never cancels it, so every answered request stays alive for the whole timeout: its
timer, future and context (with the tracing span) — at 1,500 req/s and a 10 s timeout, ~16k
requests' worth of objects that each full garbage collection walks. The result is periodic
collections of 15–120 ms that stall every request in flight (measured with the trivial endpoint:
raw latency p99 1 ms but max 117 ms in 6 s; with the timer cancelled, no request over 10 ms).

`install()` swaps in `CancellingTimeout`, the same middleware (same 504 body, same semantics:
the deadline covers the time to the first response message) that cancels its timer as soon as
the response starts, and also stops waiting when the app ends without answering. It also swaps
in `OverloadIs503`: past `traffic.max_concurrency` requests in flight BentoML answers 429; our
contract (DESIGN.md, the OpenAPI spec) is 503 with a JSON body and `Retry-After`. The service
modules call it where they are defined; `tests/code/test_traffic.py` checks these behaviours.

Last, a service middleware whose class sets `OUTERMOST = True` (`serving.guard.Guard`) is put in
front of BentoML's own (metrics, OpenTelemetry, timeout, concurrency) instead of behind them:
per request those cost ~5x a bare Starlette endpoint (measured, issue 19), so the guard answers
its hot routes (`serving.hot`) before them, with its own 503/504 and metrics, and hands every
other request to the full stack unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

from _bentoml_impl.server.app import ServiceAppFactory
from bentoml._internal.server.http import traffic
from starlette.responses import JSONResponse

_ORIGINAL = traffic.TimeoutMiddleware
_ORIGINAL_LIMIT = traffic.MaxConcurrencyMiddleware
_ORIGINAL_MIDDLEWARES = ServiceAppFactory.middlewares
OVERLOADED = {"error": "overloaded: too many requests in flight; retry shortly", "detail": []}
RETRY_AFTER = "1"  # seconds, the Retry-After of an overloaded answer


def timed_out(timeout: float) -> dict[str, str]:
    """The 504 body (BentoML's wording) for a request not answered within `timeout` s."""
    return {"error": f"Not able to process the request in {timeout} seconds"}


class CancellingTimeout(_ORIGINAL):
    """`TimeoutMiddleware` whose timer lives only until the response starts."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

        def answered(_: object = None) -> None:
            if not waiter.done():
                waiter.set_result(None)
            timer.cancel()

        async def _send(message: Any) -> None:
            answered()
            await send(message)

        fut = asyncio.ensure_future(self.app(scope, receive, _send))
        fut.add_done_callback(answered)  # an app that ends without answering frees us too
        try:
            await waiter
        except TimeoutError:
            if fut.cancel():
                await JSONResponse(timed_out(self.timeout), 504)(scope, receive, send)
        else:
            await fut
        finally:
            timer.cancel()


class OverloadIs503(_ORIGINAL_LIMIT):
    """`MaxConcurrencyMiddleware` that refuses the request past the limit with 503."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if (
            scope["type"] in ("http", "websocket")
            and scope["path"] not in self.skip_paths
            and self._semaphore.locked()
        ):
            headers = {"Retry-After": RETRY_AFTER}
            await JSONResponse(OVERLOADED, status_code=503, headers=headers)(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _outermost_first(factory: ServiceAppFactory) -> list:
    """BentoML's middleware list with the `OUTERMOST` ones moved to the front (stable order)."""
    middlewares = _ORIGINAL_MIDDLEWARES.fget(factory)
    first = [m for m in middlewares if getattr(m.cls, "OUTERMOST", False)]
    return first + [m for m in middlewares if m not in first]


def install() -> None:
    """Make BentoML build our two traffic middlewares wherever it would build its own (it
    imports the names from `traffic` when it assembles a service's middleware), and put the
    `OUTERMOST` service middlewares in front of its own."""
    traffic.TimeoutMiddleware = CancellingTimeout
    traffic.MaxConcurrencyMiddleware = OverloadIs503
    ServiceAppFactory.middlewares = property(_outermost_first)  # type: ignore[method-assign]
