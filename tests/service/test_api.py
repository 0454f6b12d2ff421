"""The real BentoML service over HTTP: routes, auth, validation, limits, OpenAPI, hot reload."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import pytest

from inference.smoke import SEED_CUSTOMERS

pytestmark = [pytest.mark.slow, pytest.mark.integration, pytest.mark.timeout(300)]

VALID = {"subscription_duration": 10, "failed_payments": 0, "usage_pattern": 80}
PROTECTED = [
    ("POST", "/churn"),
    ("POST", "/recommend"),
    ("POST", "/offer"),
    ("POST", "/admin/reload"),
    ("GET", "/admin/reload"),
    ("GET", "/metrics"),
    ("GET", "/docs.json"),
]


def test_health_is_open(api) -> None:
    assert httpx.get(f"{api.url}/healthz").status_code == 200


def test_readyz_reports_loaded_versions(api) -> None:
    r = httpx.get(f"{api.url}/readyz")
    assert r.status_code == 200
    body = r.json()
    churn = next(m for m in body["models"] if m["name"] == "paycycle-churn")
    assert body["ready"] is True
    assert churn["loaded"] is True and churn["alias"] == "champion" and churn["version"]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
@pytest.mark.parametrize("header", [None, "Bearer wrong", "Basic abc"])
def test_token_required(api, method: str, path: str, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    r = httpx.request(method, f"{api.url}{path}", json={"customers": [VALID]}, headers=headers)
    assert r.status_code == 401
    assert "bearer token" in r.json()["error"]


def test_churn_answers_with_version_and_band(api) -> None:
    version = httpx.get(f"{api.url}/readyz").json()["models"][0]["version"]
    r = api.post("/churn", {"customers": [{**VALID, "customer_id": "a"}, {**VALID}]})
    assert r.status_code == 200, r.text
    out = r.json()
    assert [o["customer_id"] for o in out] == ["a", None]
    for o in out:
        assert 0 <= o["churn_probability"] <= 1
        assert o["risk_band"] in {"low", "medium", "high"}
        assert o["model_version"] == version


def test_seed_customers_monotone(api) -> None:
    r = api.post("/churn", {"customers": SEED_CUSTOMERS})
    assert r.status_code == 200
    probs = [o["churn_probability"] for o in r.json()]
    assert probs[0] < probs[1] < probs[2], probs


def test_batching_gives_the_same_answer(api) -> None:
    """A customer scored alone and inside a concurrent crowd gets the same probability."""
    alone = api.post("/churn", {"customers": SEED_CUSTOMERS[2:]}).json()[0]["churn_probability"]
    results: list[float] = []

    def fire() -> None:
        body = {"customers": SEED_CUSTOMERS}
        results.append(api.post("/churn", body).json()[2]["churn_probability"])

    threads = [threading.Thread(target=fire) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == pytest.approx([alone] * 16, abs=1e-6)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"customers": [{"subscription_duration": 10, "usage_pattern": 80}]}, "failed_payments"),
        ({"customers": [{**VALID, "failed_payments": -1}]}, "failed_payments"),
        ({"customers": [{**VALID, "usage_pattern": "eighty"}]}, "usage_pattern"),
        ({"customers": [{**VALID, "usage_pattern": "80"}]}, "usage_pattern"),
        ({"customers": [{**VALID, "segment": "galactic"}]}, "segment"),
        ({"customers": [{**VALID, "colour": "blue"}]}, "colour"),
        ({"customers": []}, "customers"),
        ({}, "customers"),
    ],
)
def test_invalid_input_is_422_naming_the_field(api, body: dict, field: str) -> None:
    r = api.post("/churn", body)
    assert r.status_code == 422, r.text
    locs = [str(part) for d in r.json()["detail"] for part in d["loc"]]
    assert field in locs


def test_malformed_json_and_wrong_type_are_4xx(api) -> None:
    bad = httpx.post(
        f"{api.url}/churn",
        content=b'{"customers": [',
        headers={**api.auth, "Content-Type": "application/json"},
    )
    assert bad.status_code == 422
    form = httpx.post(
        f"{api.url}/churn",
        content=b"customers=1",
        headers={**api.auth, "Content-Type": "multipart/form-data"},
    )
    assert form.status_code == 415


def test_ten_megabyte_body_is_refused(api) -> None:
    big = b'{"customers": [' + b'{"subscription_duration": 1},' * 360_000 + b"{}]}"
    assert len(big) > 10_000_000
    r = httpx.post(
        f"{api.url}/churn",
        content=big,
        headers={**api.auth, "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 413
    assert "larger than" in r.json()["error"]

    def chunks():  # no Content-Length: the guard counts what it reads
        for _ in range(11):
            yield b" " * 1_000_000

    r = httpx.post(
        f"{api.url}/churn",
        content=chunks(),
        headers={**api.auth, "Content-Type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 413


def test_too_many_customers_is_422(api) -> None:
    r = api.post("/churn", {"customers": [VALID] * 1001})
    assert r.status_code == 422


def test_metrics_and_openapi(api) -> None:
    """/churn (a hot route, `serving.hot`) has its own series; the other routes keep BentoML's."""
    assert api.post("/churn", {"customers": [VALID]}).status_code == 200
    assert api.post("/recommend", {"customers": [{**VALID, "plan_id": 2}]}).status_code == 200
    metrics = httpx.get(f"{api.url}/metrics", headers=api.auth)
    assert metrics.status_code == 200
    assert 'paycycle_hot_requests_total{route="/churn",status="200"}' in metrics.text
    assert 'paycycle_hot_request_duration_seconds_count{route="/churn"}' in metrics.text
    assert 'bentoml_service_request_duration_seconds_count{endpoint="/recommend"' in metrics.text
    spec = httpx.get(f"{api.url}/docs.json", headers=api.auth).json()
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    churn = spec["paths"]["/churn"]["post"]
    assert {"200", "401", "413", "422", "503"} <= set(churn["responses"])
    customer = spec["components"]["schemas"]["Customer"]["properties"]["failed_payments"]
    assert customer["minimum"] == 0


def test_recommend_and_offer_answer(api) -> None:
    body = {"customers": [{**VALID, "plan_id": 2, "customer_id": "a"}]}
    for path in ("/recommend", "/offer"):
        r = api.post(path, body)
        assert r.status_code == 200, r.text
        assert r.json()[0]["customer_id"] == "a"


def test_schemathesis_finds_no_server_errors(api) -> None:
    """Property-based fuzzing of every documented operation against the spec."""
    st = Path(sys.executable).parent / "schemathesis"
    cmd = [
        str(st),
        "run",
        f"{api.url}/docs.json",
        "--header",
        f"Authorization: Bearer {api.token}",
        "--max-examples",
        "25",
        "--checks",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
        "--request-timeout",
        "20",
        "--seed",
        "7",
    ]
    models = httpx.get(f"{api.url}/readyz").json()["models"]
    assert all(m["loaded"] for m in models), models  # every route is fuzzed, none skipped
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stdout[-6000:]


def _new_champion(api) -> tuple[str, str]:
    """Register the champion's artifact again as a new version and move `champion` to it."""
    from inference.registry import CHAMPION, CHURN_MODEL, alias_version, client
    from training import tracking

    settings = api.settings()
    old = alias_version(settings, CHURN_MODEL, CHAMPION)
    source = client(settings).get_model_version(CHURN_MODEL, old).source
    new = tracking.register_version(settings, source, CHURN_MODEL, {"test": "reload"})
    tracking.set_alias(settings, CHURN_MODEL, CHAMPION, new)
    return old, new


def _wait_reloaded(api, timeout: float = 120) -> dict:
    """Poll `GET /admin/reload` until the background load has an outcome."""
    deadline = time.monotonic() + timeout
    while True:
        status = httpx.get(f"{api.url}/admin/reload", headers=api.auth).json()
        if status["state"] != "loading" or time.monotonic() > deadline:
            return status
        time.sleep(0.2)


def test_reload_swaps_champion_without_failed_requests(api) -> None:
    """Promote a new champion version, reload while requests fly: all succeed, version moves."""
    old, new = _new_champion(api)

    statuses: Counter[int] = Counter()
    versions: list[str] = []
    stop = threading.Event()

    def fire() -> None:
        with httpx.Client(headers=api.auth, timeout=30) as http:
            while not stop.is_set():
                r = http.post(f"{api.url}/churn", json={"customers": SEED_CUSTOMERS})
                statuses[r.status_code] += 1
                if r.status_code == 200:
                    versions.append(r.json()[0]["model_version"])

    threads = [threading.Thread(target=fire) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        r = api.post("/admin/reload", {})
        assert r.status_code == 202, r.text
        assert r.json()["state"] == "loading"
        status = _wait_reloaded(api)
        assert status["state"] == "done" and status["versions"]["paycycle-churn"] == new, status
        after = api.post("/churn", {"customers": [VALID]}).json()[0]["model_version"]
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert after == new != old
    assert set(statuses) == {200}, statuses
    assert versions and versions[-1] == new
    assert httpx.get(f"{api.url}/readyz").json()["models"][0]["version"] == new


def test_sighup_reloads_the_champion(api) -> None:
    _, new = _new_champion(api)
    pid = httpx.get(f"{api.url}/readyz").json()["pid"]
    os.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if httpx.get(f"{api.url}/readyz").json()["models"][0]["version"] == new:
            break
        time.sleep(0.5)
    assert api.post("/churn", {"customers": [VALID]}).json()[0]["model_version"] == new


def test_scored_requests_reach_the_request_log(api, serving_store) -> None:
    """What the drift monitor reads: each /churn customer with its features, the probability
    the service answered and the model version, written off the request path."""
    from monitoring.requests import read_requests

    _, work = serving_store
    sent = [
        {
            "customer_id": f"log-{i}",
            "subscription_duration": i,
            "failed_payments": 1,
            "usage_pattern": 30 + i,
        }
        for i in range(6)
    ]
    answer = {row["customer_id"]: row for row in api.post("/churn", {"customers": sent}).json()}
    deadline = time.monotonic() + 20
    while True:
        logged = read_requests(work / "data" / "requests")
        logged = logged[logged["customer_id"].isin(answer)] if len(logged) else logged
        if len(logged) == len(sent) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(logged) == len(sent)
    for row in logged.itertuples():
        assert row.churn_probability == pytest.approx(answer[row.customer_id]["churn_probability"])
        assert row.model_version == answer[row.customer_id]["model_version"]
    assert sorted(logged["usage_pattern"]) == [30.0 + i for i in range(6)]
