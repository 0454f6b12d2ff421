"""`serving.hot`: the hot routes' own 503/504/500 answers and body reading, over real ASGI calls.

The scoring itself is the real service's (`tests/service/test_api.py` drives `/churn` through
this path); here a small service object stands in for `PayCycle` so each fault can be forced.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from serving.hot import HotRoutes, read_body

SCOPE = {"type": "http", "method": "POST", "path": "/churn", "headers": []}


def _receiver(*chunks: bytes) -> Any:
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    return receive


def _call(app: Any, body: bytes = b"{}") -> tuple[int, dict]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(app(SCOPE, _receiver(body), send))
    return sent[0]["status"], json.loads(sent[1]["body"])


class Service:
    """Stands in for `PayCycle`: answers `/churn` after `delay` seconds, or raises."""

    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.delay, self.fail, self.bodies = delay, fail, []

    async def answer_churn(self, body: bytes) -> tuple[int, bytes]:
        self.bodies.append(body)
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("model exploded")
        return 200, b'{"ok": true}'


def _routes(service: Service | None, timeout: float = 10, limit: int = 256) -> HotRoutes:
    app = HotRoutes({"/churn": "answer_churn"}, timeout=timeout, max_concurrency=limit)
    app._instance = service  # None: looked up in BentoML, which has no instance here
    return app


def test_a_chunked_body_is_read_whole() -> None:
    body = asyncio.run(read_body(_receiver(b'{"cust', b'omers": ', b"[]}")))
    assert body == b'{"customers": []}'


def test_a_client_gone_before_its_body_is_none() -> None:
    async def gone() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    assert asyncio.run(read_body(gone)) is None


def test_the_answer_comes_from_the_service_method() -> None:
    service = Service()
    assert _call(_routes(service), b'{"customers": []}') == (200, {"ok": True})
    assert service.bodies == [b'{"customers": []}']


def test_before_the_service_exists_it_is_503() -> None:
    status, body = _call(_routes(None))  # no BentoML server in this process: no instance
    assert status == 503
    assert "starting" in body["error"]


def test_a_failing_answer_is_one_json_500() -> None:
    status, body = _call(_routes(Service(fail=True)))
    assert status == 500
    assert body == {"error": "An unexpected error has occurred, please check the server log."}


def test_past_the_timeout_it_is_504() -> None:
    status, body = _call(_routes(Service(delay=5), timeout=0.05))
    assert status == 504
    assert "0.05 seconds" in body["error"]


def test_past_max_concurrency_it_is_503() -> None:
    app = _routes(Service(delay=0.2), limit=1)

    async def run() -> list[int]:
        statuses: list[int] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        first = asyncio.ensure_future(app(SCOPE, _receiver(b"{}"), send))
        await asyncio.sleep(0.05)  # the first request holds the only slot
        await app(SCOPE, _receiver(b"{}"), send)
        await first
        return statuses

    assert asyncio.run(run()) == [503, 200]
    assert app.in_flight == 0  # the slot is given back, also by the refused request
