"""The ceiling for bench_serving: a bare Starlette app on uvicorn (httptools, uvloop), no BentoML.

`POST /trivial` reads the body and answers a fixed JSON document; `GET /readyz` answers 200 so
`serving.process.wait_ready` can wait for it like for the BentoML services. Run as
`python -m uvicorn benchmarks.starlette_service:app` (one worker, like the services).
"""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

ANSWER = json.dumps({"value": 1.0}).encode()


async def trivial(request: Request) -> Response:
    """Read the body, answer the fixed document: the cost of the HTTP path alone."""
    await request.body()
    return Response(ANSWER, media_type="application/json")


async def readyz(request: Request) -> Response:
    return Response(b"{}", media_type="application/json")


app = Starlette(routes=[Route("/trivial", trivial, methods=["POST"]), Route("/readyz", readyz)])
