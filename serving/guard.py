"""ASGI middleware in front of every route: bearer token, body size limit, uniform 4xx.

- Every path except `OPEN_PATHS` (liveness/readiness probes, declared in `serving.openapi`)
  needs `Authorization: Bearer $PAYCYCLE_API_TOKEN`; otherwise 401 with a JSON body. `/metrics`
  and `/docs.json` need it too.
- A body over `serving.max_body_bytes` is refused with 413 before it is read; a body that is
  not `application/json` with 415.
- BentoML answers pydantic validation errors with 400; they are sent as 422 (the field names are
  in `detail[].loc`), the status the OpenAPI spec documents.
- `GET /payment-method?token=` (signed self-serve link, `serving.selfserve`) needs no API
  token; a bad or expired link token gets 403.
- `/readyz` and `/docs.json` are answered here: readiness with model versions, and the spec with
  the auth scheme and the error responses this layer adds; so is `GET /admin/reload` (the
  background reload's status, behind the token; BentoML routes are POST only). `/readyz` is
  open, so a model that failed to load shows only `READYZ_ERROR`; why (which may name the
  tracking URI) is in the log.
- It runs in front of BentoML's own middlewares (`OUTERMOST`, `serving.traffic`) and answers the
  hot routes it is given (`POST /churn`) through `serving.hot` once its checks pass; every other
  request goes through BentoML's full stack as before.
- The API token and link secret are checked when the guard is built (`serving.credentials`): the
  service refuses to start with a weak token or a short link secret.
"""

from __future__ import annotations

import hmac
import json
from typing import Any

from paycycle import config
from serving.credentials import check_service_secrets
from serving.hot import HotRoutes
from serving.openapi import OPEN_PATHS, RELOAD_PATH, complete_spec
from serving.selfserve import SELF_SERVE_PATHS
from serving.selfserve import answer as self_serve

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
READYZ_ERROR = "not loaded: see the server log"

Scope = dict[str, Any]


async def _send_json(send: Any, status: int, body: Any, headers: list | None = None) -> None:
    payload = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


class Guard:
    """Pure ASGI middleware (no per-request allocation beyond a send wrapper on POSTs).

    Args:
        app: BentoML's application (its middlewares, then its routes).
        hot: POST path -> name of the service method answering it (`serving.hot`).
        timeout: seconds before a hot request gets 504.
        max_concurrency: hot requests in flight before the next one gets 503.
    """

    OUTERMOST = True  # serving.traffic puts it in front of BentoML's middlewares

    def __init__(
        self,
        app: Any,
        hot: dict[str, str] | None = None,
        timeout: float = 10,
        max_concurrency: int = 256,
    ) -> None:
        settings = config.load()
        check_service_secrets(settings)
        self.app = app
        self.expected = f"Bearer {settings.api_token}".encode()
        self.max_body = settings.params.serving.max_body_bytes
        self.link_secret = settings.link_secret
        self._spec: bytes | None = None
        self.hot_paths = frozenset(hot or ())
        self.hot = HotRoutes(hot or {}, timeout, max_concurrency)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == "/readyz":
            if scope["method"] not in ("GET", "HEAD"):
                await _send_json(send, 405, {"error": "method not allowed"}, [(b"allow", b"GET")])
                return
            await self._readyz(send)
            return
        if path in SELF_SERVE_PATHS:  # customer-facing: the signed link is the credential
            await self_serve(scope, send, self.link_secret, _send_json)
            return
        if path not in OPEN_PATHS:
            given = _header(scope, b"authorization") or b""
            if not hmac.compare_digest(given, self.expected):
                await _send_json(
                    send,
                    401,
                    {"error": "missing or wrong bearer token (Authorization: Bearer <token>)"},
                    [(b"www-authenticate", b"Bearer")],
                )
                return
        if path == "/docs.json":
            await self._docs(send)
            return
        if path == RELOAD_PATH and scope["method"] != "POST":
            if scope["method"] in ("GET", "HEAD"):
                await self._reload_status(send)
            else:
                allow = [(b"allow", b"GET, POST")]
                await _send_json(send, 405, {"error": "method not allowed"}, allow)
            return
        if scope["method"] not in BODY_METHODS:
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        content_type = _header(scope, b"content-type") or b""
        if length != b"0" and not content_type.startswith(b"application/json"):
            await _send_json(
                send, 415, {"error": "send the body as Content-Type: application/json"}
            )
            return
        if length is None:
            receive = await self._buffered(receive)
            if receive is None:
                await self._too_large(send)
                return
        elif not length.isdigit() or int(length) > self.max_body:
            await self._too_large(send)
            return
        if path in self.hot_paths and scope["method"] == "POST":
            await self.hot(scope, receive, send)
            return

        async def send_422(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start" and message["status"] == 400:
                message = {**message, "status": 422}
            await send(message)

        await self.app(scope, receive, send_422)

    async def _too_large(self, send: Any) -> None:
        await _send_json(
            send, 413, {"error": f"request body larger than {self.max_body} bytes", "detail": []}
        )

    async def _buffered(self, receive: Any) -> Any:
        """Read a body sent without Content-Length, up to the limit; replay it to the app."""
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_body:
                return None
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        return replay

    async def _readyz(self, send: Any) -> None:
        import bentoml

        instance = bentoml.get_current_service()
        if instance is None:
            await _send_json(send, 503, {"ready": False, "models": [], "pid": 0})
            return
        status = instance.readiness()
        body = status.model_dump()
        for model in body["models"]:  # the detail is in the log (serving.models, reload)
            if model["error"]:
                model["error"] = READYZ_ERROR
        await _send_json(send, 200 if status.ready else 503, body)

    async def _reload_status(self, send: Any) -> None:
        import bentoml

        instance = bentoml.get_current_service()
        if instance is None:
            await _send_json(send, 503, {"error": "the service is starting", "detail": []})
            return
        await _send_json(send, 200, instance.reload_status().model_dump(mode="json"))

    async def _docs(self, send: Any) -> None:
        if self._spec is None:
            import bentoml

            instance = bentoml.get_current_service()
            self._spec = json.dumps(complete_spec(instance.bento_service)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/json")],
            }
        )
        await send({"type": "http.response.body", "body": self._spec})
