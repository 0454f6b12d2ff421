"""`serving.traffic.CancellingTimeout`: BentoML's request timeout without its timer leak."""

from __future__ import annotations

import asyncio
from typing import Any

from serving.traffic import CancellingTimeout

SCOPE = {"type": "http", "method": "POST", "path": "/churn", "headers": []}


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def _recorder() -> tuple[list[dict[str, Any]], Any]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    return sent, send


async def _ok(scope: Any, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def _live_timers(loop: asyncio.AbstractEventLoop) -> int:
    return sum(not handle.cancelled() for handle in loop._scheduled)  # type: ignore[attr-defined]


def test_answered_requests_leave_no_timer_behind() -> None:
    """BentoML's own middleware keeps one live timer (and the request's context) per answered
    request for the whole timeout; ours cancels it when the response starts."""

    async def run() -> int:
        middleware = CancellingTimeout(_ok, timeout=10)
        for _ in range(200):
            sent, send = _recorder()
            await middleware(SCOPE, _receive, send)
            assert sent[0]["status"] == 200
        return _live_timers(asyncio.get_running_loop())

    assert asyncio.run(run()) == 0


def test_a_request_past_the_deadline_gets_504() -> None:
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(5)

    async def run() -> list[dict[str, Any]]:
        sent, send = _recorder()
        await CancellingTimeout(slow, timeout=0.05)(SCOPE, _receive, send)
        return sent

    sent = asyncio.run(asyncio.wait_for(run(), 2))
    assert sent[0]["status"] == 504


def test_an_app_that_ends_without_answering_does_not_wait_for_the_deadline() -> None:
    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    async def run() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        await CancellingTimeout(silent, timeout=30)(SCOPE, _receive, _recorder()[1])
        return loop.time() - start

    assert asyncio.run(run()) < 1


def test_past_max_concurrency_the_next_request_gets_503_not_429() -> None:
    from serving.traffic import OverloadIs503

    async def run() -> tuple[int, int]:
        release = asyncio.Event()

        async def held(scope: Any, receive: Any, send: Any) -> None:
            await release.wait()
            await _ok(scope, receive, send)

        middleware = OverloadIs503(held, max_concurrency=1)
        first_sent, first_send = _recorder()
        first = asyncio.ensure_future(middleware(SCOPE, _receive, first_send))
        await asyncio.sleep(0)  # the first request holds the only slot
        second_sent, second_send = _recorder()
        await middleware(SCOPE, _receive, second_send)
        release.set()
        await first
        return first_sent[0]["status"], second_sent[0]["status"]

    assert asyncio.run(run()) == (200, 503)
