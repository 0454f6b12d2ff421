"""The OpenAPI document at `/docs.json`: BentoML's spec plus what `serving.guard` adds.

BentoML documents the API routes and its own 400/404/500 errors; the guard adds bearer auth
(401), the body limit (413), validation errors as 422, overload (503) and readiness as JSON.
The paths open without a token (`OPEN_PATHS`) are declared here and enforced by the guard.
"""

from __future__ import annotations

from typing import Any

from serving.cancel import IDEMPOTENCY_HEADER, KEY_MAX_CHARS, KEY_PATTERN
from serving.schemas import ErrorBody, Readiness, ReloadStatus

OPEN_PATHS = frozenset({"/healthz", "/livez", "/readyz"})  # probes: no bearer token
RELOAD_PATH = "/admin/reload"  # POST starts or joins a background reload; GET: its status

ERRORS = {
    "401": "missing or wrong bearer token",
    "413": "request body too large",
    "415": "body is not application/json",
    "422": "invalid input; `detail[].loc` names the field",
    "404": "unknown customer; `detail[].loc` names the field",
    "503": "overloaded (max concurrency) or no model loaded",
}


# Routes that look a customer up in the store (BentoML's own 404 schema has a string `detail`).
NOT_FOUND_PATHS = frozenset({"/cancel-intent"})
# Writes that take an `Idempotency-Key` header (serving.cancel)
IDEMPOTENT_PATHS = frozenset({"/cancel-intent"})
IDEMPOTENCY_PARAMETER = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": (
        "Makes a retry safe: the same key and body within 24 hours get the first answer again; "
        "the same key with a different body is a 409 naming this header."
    ),
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": KEY_MAX_CHARS,
        "pattern": KEY_PATTERN,
    },
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(name: str, description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(name)}}}


def _require_body(operation: dict[str, Any]) -> None:
    """BentoML leaves `requestBody.required` out; a body with required fields is required (a
    POST without one is a 422, which fuzzers would otherwise count as valid input rejected)."""
    body = operation.get("requestBody")
    if not body:
        return
    schemas = [c.get("schema", {}) for c in body.get("content", {}).values()]
    if any(s.get("required") for s in schemas):
        body["required"] = True


def complete_spec(service: Any) -> dict[str, Any]:
    """Return BentoML's spec for `service` with auth, error responses and /readyz filled in."""
    spec = service.openapi_spec.asdict()
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in (ErrorBody, Readiness, ReloadStatus):
        generated = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(generated.pop("$defs", {}))
        schemas[model.__name__] = generated
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    spec["security"] = [{"bearer": []}]
    spec["info"]["contact"] = {"name": "PayCycle"}
    paths = spec["paths"]
    for path, item in paths.items():
        for method, operation in item.items():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if path in OPEN_PATHS:
                operation["security"] = []
            else:
                responses["401"] = _json("ErrorBody", ERRORS["401"])
            responses["503"] = _json("ErrorBody", ERRORS["503"])
            if method == "post":
                _require_body(operation)
                responses.pop("400", None)
                responses["413"] = _json("ErrorBody", ERRORS["413"])
                responses["415"] = _json("ErrorBody", ERRORS["415"])
                responses["422"] = _json("ErrorBody", ERRORS["422"])
            if path in NOT_FOUND_PATHS:
                responses["404"] = _json("ErrorBody", ERRORS["404"])
            if path in IDEMPOTENT_PATHS and method == "post":
                operation.setdefault("parameters", []).append(IDEMPOTENCY_PARAMETER)
                responses["409"] = _json(
                    "ErrorBody", f"{IDEMPOTENCY_HEADER} already used for a different request"
                )
    if RELOAD_PATH in paths:
        _document_reload(paths[RELOAD_PATH])
    if "/readyz" in paths:
        paths["/readyz"]["get"]["responses"] = {
            "200": _json("Readiness", "models loaded, with their versions"),
            "503": _json("Readiness", "not ready: a required model is not loaded"),
        }
    return spec


def _document_reload(item: dict[str, Any]) -> None:
    """POST answers 202 (started or joined) or 409 (a load past its deadline still runs), not
    BentoML's 200; GET (answered by the guard) is the status."""
    responses = item["post"]["responses"]
    responses.pop("200", None)
    responses["202"] = _json("ReloadStatus", "a load started, or the running one was joined")
    responses["409"] = _json(
        "ReloadStatus", "a load that passed its deadline is still running; retry when idle"
    )
    item["get"] = {
        "summary": "status of the background reload",
        "operationId": "reload_status",
        "security": [{"bearer": []}],
        "responses": {
            "200": _json("ReloadStatus", "state, times, versions served, error"),
            "401": _json("ErrorBody", ERRORS["401"]),
            "503": _json("ErrorBody", "the service is starting"),
        },
    }
